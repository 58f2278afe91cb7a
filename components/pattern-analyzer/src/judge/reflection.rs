//! The reflection derived on completion, deterministically, from the steps:
//! what went well, what to improve, and what the run says. Its error →
//! recovery lines are the recoveries [`crate::recovery`] finds, the same
//! ones the `error_recovery` patterns are learned from.

use std::collections::BTreeMap;

use super::Reflection;
use crate::model::{Outcome, OutcomeType, Step, StepStatus};
use crate::recovery::recoveries;

/// A step slower than this many times the median (and over a second) is
/// called out.
const SLOW_FACTOR: u64 = 3;
const SLOW_FLOOR_MS: u64 = 1000;
/// This many identical tool+action steps in a row is called out.
const REPEAT_RUN: usize = 3;

fn short(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn status_name(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Success => "success",
        StepStatus::Error => "error",
        StepStatus::Timeout => "timeout",
    }
}

/// The reflection on `steps` ending in `outcome`.
pub fn derive(steps: &[Step], outcome: &Outcome) -> Reflection {
    let mut r = Reflection::default();
    let n = steps.len();

    // Error → recovery pairs, and errors never recovered.
    let recovered = recoveries(steps);
    for (i, s) in steps.iter().enumerate() {
        if s.status == StepStatus::Success {
            continue;
        }
        let what = s.message.as_deref().map(short).unwrap_or_else(|| status_name(s.status).to_string());
        if let Some(fix) = recovered.iter().find(|x| x.failed == i).map(|x| &steps[x.fix]) {
            r.successes.push(format!(
                "Recovered from {} failure in step {} ({what}) with {}: {} (step {})",
                s.tool,
                s.number,
                fix.tool,
                short(&fix.action),
                fix.number
            ));
        } else if !recovered.iter().any(|x| x.covers(i)) {
            r.improvements.push(format!("Step {} ({}) failed and was never recovered: {what}", s.number, s.tool));
        }
        if s.status == StepStatus::Timeout {
            r.improvements.push(format!("Step {} ({}) timed out; consider a smaller unit of work or a longer limit", s.number, s.tool));
        }
    }

    // Slow steps.
    let mut lat: Vec<u64> = steps.iter().map(|s| s.latency_ms).collect();
    lat.sort_unstable();
    if let Some(median) = lat.get(lat.len() / 2).copied() {
        for s in steps {
            if s.latency_ms > SLOW_FLOOR_MS && s.latency_ms > median.max(1) * SLOW_FACTOR {
                r.improvements.push(format!(
                    "Step {} ({}) took {} ms, {}× the median of {} ms",
                    s.number,
                    s.tool,
                    s.latency_ms,
                    s.latency_ms / median.max(1),
                    median
                ));
            }
        }
    }

    // Repeated tools.
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && steps[j].tool == steps[i].tool && steps[j].action == steps[i].action {
            j += 1;
        }
        if j - i >= REPEAT_RUN {
            r.improvements.push(format!(
                "Repeated {} \"{}\" {} times in a row (steps {}-{})",
                steps[i].tool,
                short(&steps[i].action),
                j - i,
                steps[i].number,
                steps[j - 1].number
            ));
        }
        i = j;
    }

    // Insights: the tool sequence, the most used tool, the error rate, the outcome.
    let mut seq: Vec<&str> = Vec::new();
    for s in steps {
        if seq.last() != Some(&s.tool.as_str()) {
            seq.push(&s.tool);
        }
    }
    if !seq.is_empty() {
        r.insights.push(format!("Tool sequence: {}", seq.join(" → ")));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in steps {
        *counts.entry(&s.tool).or_default() += 1;
    }
    if let Some((tool, c)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
        r.insights.push(format!("Most used tool: {tool} ({c} of {n} steps)"));
    }
    let errors = steps.iter().filter(|s| s.status != StepStatus::Success).count();
    if n > 0 {
        r.insights.push(format!("Error rate: {errors} of {n} steps ({:.0}%)", 100.0 * errors as f64 / n as f64));
    }
    match outcome.kind {
        OutcomeType::Success => r.successes.push(format!(
            "Succeeded in {n} steps{}",
            if outcome.verdict.is_empty() { String::new() } else { format!(": {}", short(&outcome.verdict)) }
        )),
        OutcomeType::PartialSuccess => r.insights.push(format!(
            "Partial success: {} completed, {} failed",
            outcome.completed.len(),
            outcome.failed.len()
        )),
        OutcomeType::Failure => r.improvements.push(format!(
            "Failed: {}",
            outcome.reason.as_deref().or(outcome.error_details.as_deref()).map(short).unwrap_or_else(|| "no reason given".into())
        )),
    }
    r
}
