//! `context_pattern`: the language, framework, complexity and tags that go
//! with success or failure in a domain and task type. Each feature is its
//! own pattern, so evidence accumulates per feature.

use super::accumulator::Accumulator;
use super::text::normalize;
use crate::model::{Episode, Pattern, PatternKind};

/// Most tags of one episode that become context features.
const MAX_TAGS: usize = 8;
/// Co-occurrence says little on its own.
const CONTEXT_CONFIDENCE: f64 = 0.5;

pub fn observe(e: &Episode, weight: f64, acc: &mut Accumulator) {
    let mut features: Vec<(&'static str, String)> = Vec::with_capacity(3 + MAX_TAGS);
    if let Some(l) = &e.language {
        features.push(("language", normalize(l)));
    }
    if let Some(f) = &e.framework {
        features.push(("framework", normalize(f)));
    }
    features.push(("complexity", e.complexity.name().to_string()));
    for t in e.tags.iter().take(MAX_TAGS) {
        features.push(("tag", normalize(t)));
    }
    let task = e.task_type.name();
    for (feature, value) in features {
        if value.is_empty() {
            continue;
        }
        let key = format!("context_pattern|{}|{task}|{feature}={value}", e.domain);
        acc.pattern(key, e, weight, CONTEXT_CONFIDENCE, |key| Pattern {
            key,
            kind: PatternKind::ContextPattern,
            label: "context_pattern".into(),
            description: format!("{feature} {value} in {} {} tasks", e.domain, task.replace('_', " ")),
            domain: Some(e.domain.clone()),
            task_type: Some(e.task_type),
            tools: Vec::new(),
            condition: Some(format!("{feature} = {value}")),
            action: None,
            data_json: serde_json::json!({"feature": feature, "value": value}).to_string(),
            evidence: Default::default(),
            confidence: 0.0,
        });
    }
}
