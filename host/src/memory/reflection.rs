//! The reflection derived on completion, deterministically, from the steps:
//! what went well, what to improve, and what the run says.

use std::collections::BTreeMap;

use super::model::{Outcome, OutcomeType, Reflection, Step, StepStatus};

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

pub fn derive(steps: &[Step], outcome: &Outcome) -> Reflection {
    let mut r = Reflection::default();
    let n = steps.len();

    // Error → recovery pairs, and errors never recovered.
    for (i, s) in steps.iter().enumerate() {
        if s.result.status == StepStatus::Success {
            continue;
        }
        let what = s.result.message.as_deref().map(short).unwrap_or_else(|| format!("{:?}", s.result.status).to_lowercase());
        match steps[i + 1..].iter().find(|later| later.result.status == StepStatus::Success) {
            Some(fix) => r.successes.push(format!(
                "Recovered from {} failure in step {} ({what}) with {}: {} (step {})",
                s.tool, s.step_number, fix.tool, short(&fix.action), fix.step_number
            )),
            None => r.improvements.push(format!(
                "Step {} ({}) failed and was never recovered: {what}",
                s.step_number, s.tool
            )),
        }
        if s.result.status == StepStatus::Timeout {
            r.improvements.push(format!("Step {} ({}) timed out; consider a smaller unit of work or a longer limit", s.step_number, s.tool));
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
                    s.step_number, s.tool, s.latency_ms, s.latency_ms / median.max(1), median
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
                steps[i].step_number,
                steps[j - 1].step_number
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
    let errors = steps.iter().filter(|s| s.result.status != StepStatus::Success).count();
    if n > 0 {
        r.insights.push(format!("Error rate: {errors} of {n} steps ({:.0}%)", 100.0 * errors as f64 / n as f64));
    }
    match outcome.outcome_type {
        OutcomeType::Success => {
            r.successes.push(format!("Succeeded in {n} steps{}", if outcome.verdict.is_empty() { String::new() } else { format!(": {}", short(&outcome.verdict)) }));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::model::StepResult;
    use chrono::Utc;

    fn step(n: u32, tool: &str, action: &str, status: StepStatus, latency: u64) -> Step {
        Step {
            step_number: n,
            timestamp: Utc::now(),
            tool: tool.into(),
            action: action.into(),
            parameters: Default::default(),
            result: StepResult { status, output: None, message: Some("boom".into()) },
            latency_ms: latency,
            tokens_used: None,
        }
    }

    #[test]
    fn finds_recoveries_slow_steps_and_repeats() {
        let steps = vec![
            step(1, "cargo", "build", StepStatus::Error, 100),
            step(2, "editor", "fix import", StepStatus::Success, 100),
            step(3, "cargo", "test", StepStatus::Success, 9000),
            step(4, "grep", "search", StepStatus::Success, 100),
            step(5, "grep", "search", StepStatus::Success, 100),
            step(6, "grep", "search", StepStatus::Success, 100),
        ];
        let o = Outcome {
            outcome_type: OutcomeType::Success,
            verdict: "done".into(),
            artifacts: vec![],
            completed: vec![],
            failed: vec![],
            reason: None,
            error_details: None,
        };
        let r = derive(&steps, &o);
        assert!(r.successes.iter().any(|s| s.contains("Recovered from cargo failure in step 1") && s.contains("editor")), "{r:?}");
        assert!(r.improvements.iter().any(|s| s.contains("Step 3 (cargo) took 9000 ms")), "{r:?}");
        assert!(r.improvements.iter().any(|s| s.contains("Repeated grep") && s.contains("3 times")), "{r:?}");
        assert!(r.insights.contains(&"Tool sequence: cargo → editor → cargo → grep".to_string()), "{r:?}");
        assert_eq!(derive(&steps, &o), r, "deterministic");
    }
}
