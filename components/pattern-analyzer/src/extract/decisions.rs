//! `decision_point`: a step that states a condition and the action taken
//! on it, either in its action text ("if the cache is cold, warm it",
//! "retry because the lock was held") or as a `condition` parameter.

use super::accumulator::Accumulator;
use super::text::normalize;
use crate::model::{Episode, Pattern, PatternKind, Step, StepStatus};

/// "if X then Y", "when X, Y": the condition comes first.
const LEADING: &[&str] = &["if ", "when ", "since ", "because ", "unless "];
/// "Y because X", "Y if X": the action comes first.
const TRAILING: &[&str] = &[" because ", " since ", " when ", " if ", " unless "];
/// What separates a leading condition from its action.
const SEPARATORS: &[&str] = &[" then ", ", ", ": ", " -> ", " => "];

/// The (condition, action) a step states, if any.
pub fn decision(step: &Step) -> Option<(String, String)> {
    if step.parameters_json.contains("\"condition\"")
        && let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&step.parameters_json)
        && let Some(serde_json::Value::String(c)) = m.get("condition")
    {
        let action = match m.get("decision").or_else(|| m.get("action")) {
            Some(serde_json::Value::String(a)) => a.clone(),
            _ => step.action.clone(),
        };
        return nonempty(c, &action);
    }
    let text = step.action.trim();
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII; only split when
    // it did not.
    if lower.len() != text.len() {
        return None;
    }
    for lead in LEADING {
        if let Some(rest) = lower.strip_prefix(lead) {
            let offset = lead.len();
            for sep in SEPARATORS {
                if let Some(at) = rest.find(sep) {
                    let cond = &text[offset..offset + at];
                    let action = &text[offset + at + sep.len()..];
                    return nonempty(cond, action);
                }
            }
        }
    }
    for trail in TRAILING {
        if let Some(at) = lower.find(trail) {
            return nonempty(&text[at + trail.len()..], &text[..at]);
        }
    }
    None
}

fn nonempty(cond: &str, action: &str) -> Option<(String, String)> {
    let (c, a) = (normalize(cond), normalize(action));
    (!c.is_empty() && !a.is_empty()).then_some((c, a))
}

pub fn observe(e: &Episode, weight: f64, acc: &mut Accumulator) {
    for step in &e.steps {
        let Some((cond, action)) = decision(step) else { continue };
        let confidence = if step.status == StepStatus::Success { 1.0 } else { 0.3 };
        let key = format!("decision_point|{}|{}|{cond}|{action}", e.domain, step.tool);
        acc.pattern(key, e, weight, confidence, |key| Pattern {
            key,
            kind: PatternKind::DecisionPoint,
            label: "decision_point".into(),
            description: format!("when {cond}: {action} ({})", step.tool),
            domain: Some(e.domain.clone()),
            task_type: Some(e.task_type),
            tools: vec![step.tool.clone()],
            condition: Some(cond.clone()),
            action: Some(action.clone()),
            data_json: "{}".into(),
            evidence: Default::default(),
            confidence: 0.0,
        });
        let hkey = format!("heuristic|decision|{}|{cond}|{action}", e.domain);
        acc.heuristic(hkey, e, weight, confidence, || (cond.clone(), action.clone(), Some(e.domain.clone())));
    }
}
