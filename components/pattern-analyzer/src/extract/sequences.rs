//! `tool_sequence`: the ordered tools an episode used (consecutive repeats
//! collapsed), with the success of the episodes that used them. Also the
//! heuristic "for this kind of task, use this sequence".

use super::accumulator::Accumulator;
use super::text::arrow_join;
use super::MAX_SEQUENCE_TOOLS;
use crate::model::{Episode, Pattern, PatternKind, StepStatus};

pub fn observe(e: &Episode, weight: f64, acc: &mut Accumulator) {
    let mut tools: Vec<String> = Vec::new();
    for s in &e.steps {
        if tools.last() != Some(&s.tool) {
            if tools.len() == MAX_SEQUENCE_TOOLS {
                break;
            }
            tools.push(s.tool.clone());
        }
    }
    if tools.len() < 2 {
        return;
    }
    let ok = e.steps.iter().filter(|s| s.status == StepStatus::Success).count();
    // A clean run is clearer evidence than one that stumbled through.
    let confidence = ok as f64 / e.steps.len() as f64;
    let seq = tools.join(">");
    let task = e.task_type.name();
    let key = format!("tool_sequence|{}|{task}|{seq}", e.domain);
    acc.pattern(key, e, weight, confidence, |key| Pattern {
        key,
        kind: PatternKind::ToolSequence,
        label: "tool_sequence".into(),
        description: format!("{} in {} {} tasks", arrow_join(&tools), e.domain, task.replace('_', " ")),
        domain: Some(e.domain.clone()),
        task_type: Some(e.task_type),
        data_json: format!("{{\"length\":{}}}", tools.len()),
        tools: tools.clone(),
        condition: None,
        action: None,
        evidence: Default::default(),
        confidence: 0.0,
    });
    let hkey = format!("heuristic|sequence|{}|{task}|{seq}", e.domain);
    acc.heuristic(hkey, e, weight, confidence, || {
        (
            format!("a {} task in {}", task.replace('_', " "), e.domain),
            format!("use {}", arrow_join(&tools)),
            Some(e.domain.clone()),
        )
    });
}
