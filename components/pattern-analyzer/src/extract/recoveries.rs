//! `error_recovery`: a step that failed, then the step that fixed it (as
//! [`crate::recovery`] defines it, the one definition the reflection uses
//! too), keyed by the failing tool,
//! the kind of error and the fixing tool. Also the heuristic "when this
//! fails this way, do that".

use super::accumulator::Accumulator;
use super::text::normalize;
use crate::model::{Episode, Pattern, PatternKind, Step, StepStatus};
use crate::recovery::{Recovery, recoveries};

/// Error kinds, from the first match in the message (lower-cased).
const KINDS: &[(&str, &[&str])] = &[
    ("timeout", &["timeout", "timed out", "deadline"]),
    ("permission", &["permission", "denied", "forbidden", "unauthorized", "401", "403"]),
    ("not_found", &["not found", "no such", "404", "missing", "unknown"]),
    ("syntax", &["syntax", "parse error", "unexpected token"]),
    ("type", &["type error", "typeerror", "mismatched types", "expected type", "type mismatch"]),
    ("compile", &["compile", "cannot find", "unresolved", "undefined reference", "borrow"]),
    ("test_failure", &["test failed", "assertion", "assert", "failures:", "tests failed"]),
    ("network", &["connection", "network", "dns", "refused", "unreachable", "econn"]),
    ("dependency", &["dependency", "version", "conflict", "lockfile", "package"]),
    ("resource", &["out of memory", "oom", "disk full", "quota", "rate limit", "too many"]),
];

/// The kind of error a failed step reports.
pub fn error_kind(step: &Step) -> &'static str {
    if step.status == StepStatus::Timeout {
        return "timeout";
    }
    let Some(msg) = &step.message else { return "other" };
    let msg = msg.to_lowercase();
    KINDS
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| msg.contains(n)))
        .map(|(k, _)| *k)
        .unwrap_or("other")
}

pub fn observe(e: &Episode, weight: f64, acc: &mut Accumulator) {
    let steps = &e.steps;
    for Recovery { failed: i, fix: j } in recoveries(steps) {
        let failed = &steps[i];
        let fix = &steps[j];
        let kind = error_kind(failed);
        let fix_action = normalize(&fix.action);
        // A recovery that led to a good outcome is the clearer lesson.
        let confidence = 0.5 + 0.5 * weight;
        let key = format!("error_recovery|{}|{}|{kind}|{}|{fix_action}", e.domain, failed.tool, fix.tool);
        acc.pattern(key, e, weight, confidence, |key| Pattern {
            key,
            kind: PatternKind::ErrorRecovery,
            label: "error_recovery".into(),
            description: format!(
                "after {} fails with a {} error, {} ({}) recovers",
                failed.tool,
                kind.replace('_', " "),
                fix.tool,
                fix_action
            ),
            domain: Some(e.domain.clone()),
            task_type: Some(e.task_type),
            tools: vec![failed.tool.clone(), fix.tool.clone()],
            condition: Some(format!("{} fails with a {} error", failed.tool, kind.replace('_', " "))),
            action: Some(format!("{}: {}", fix.tool, fix_action)),
            data_json: serde_json::json!({
                "error_kind": kind,
                "failed_tool": failed.tool,
                "fix_tool": fix.tool,
                "steps_to_fix": j - i,
            })
            .to_string(),
            evidence: Default::default(),
            confidence: 0.0,
        });
        let hkey = format!("heuristic|recovery|{}|{}|{kind}|{}|{fix_action}", e.domain, failed.tool, fix.tool);
        acc.heuristic(hkey, e, weight, confidence, || {
            (
                format!("{} fails with a {} error", failed.tool, kind.replace('_', " ")),
                format!("{}: {}", fix.tool, fix_action),
                Some(e.domain.clone()),
            )
        });
    }
}
