//! Between the store's model and the WIT types: episodes going in, and
//! analyzer output coming back, checked against the contract before any
//! of it is kept.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::{Evidence, PatternKind, Provenance, StoredPattern, pattern_id, Effectiveness};
use crate::plugins::analyzer_policy::AnalyzerLimits;
use crate::memory::model::{Complexity, Episode, OutcomeType, StepStatus, TaskType};
use crate::world::analyzer::Analysis;
use crate::world::types as w;

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// The WIT `task-type` for a stored episode's task type (one to one).
pub fn task_type_to_wit(t: TaskType) -> w::TaskType {
    match t {
        TaskType::CodeGeneration => w::TaskType::CodeGeneration,
        TaskType::Debugging => w::TaskType::Debugging,
        TaskType::Refactoring => w::TaskType::Refactoring,
        TaskType::Testing => w::TaskType::Testing,
        TaskType::Analysis => w::TaskType::Analysis,
        TaskType::Documentation => w::TaskType::Documentation,
    }
}

/// The WIT form of an episode, moving its strings rather than copying them.
pub fn episode_to_wit(e: Episode) -> w::Episode {
    let h = e.header;
    w::Episode {
        id: h.episode_id.to_string(),
        task_description: h.task_description,
        domain: h.domain,
        task_type: task_type_to_wit(h.task_type),
        context: w::TaskContext {
            language: h.context.language,
            framework: h.context.framework,
            complexity: match h.context.complexity {
                Complexity::Simple => w::Complexity::Simple,
                Complexity::Moderate => w::Complexity::Moderate,
                Complexity::Complex => w::Complexity::Complex,
            },
            tags: h.context.tags,
        },
        steps: e
            .steps
            .into_iter()
            .map(|s| w::Step {
                step_number: s.step_number,
                timestamp_ms: ms(s.timestamp),
                parameters_json: serde_json::to_string(&s.parameters).unwrap_or_else(|_| "{}".into()),
                tool: s.tool,
                action: s.action,
                result: w::StepResult {
                    status: match s.result.status {
                        StepStatus::Success => w::StepStatus::Success,
                        StepStatus::Error => w::StepStatus::Error,
                        StepStatus::Timeout => w::StepStatus::Timeout,
                    },
                    output: s.result.output,
                    message: s.result.message,
                },
                latency_ms: s.latency_ms,
                tokens_used: s.tokens_used.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
            })
            .collect(),
        outcome: h.outcome.map(|o| w::Outcome {
            outcome_type: match o.outcome_type {
                OutcomeType::Success => w::OutcomeType::Success,
                OutcomeType::PartialSuccess => w::OutcomeType::PartialSuccess,
                OutcomeType::Failure => w::OutcomeType::Failure,
            },
            verdict: o.verdict,
            artifacts: o.artifacts,
            completed: o.completed,
            failed: o.failed,
            reason: o.reason,
            error_details: o.error_details,
        }),
        reward: h.reward.map(|r| w::Reward {
            total: r.total,
            base: r.base,
            efficiency: r.efficiency,
            complexity_bonus: r.complexity_bonus,
            quality_multiplier: r.quality_multiplier,
        }),
        reflection: h.reflection.map(|r| w::Reflection { successes: r.successes, improvements: r.improvements, insights: r.insights }),
        started_at_ms: ms(h.started_at),
        completed_at_ms: h.completed_at.map(ms),
        metadata: h.metadata.into_iter().collect(),
    }
}

/// The stored task type for a WIT `task-type` (one to one).
pub fn task_type_from_wit(t: w::TaskType) -> TaskType {
    match t {
        w::TaskType::CodeGeneration => TaskType::CodeGeneration,
        w::TaskType::Debugging => TaskType::Debugging,
        w::TaskType::Refactoring => TaskType::Refactoring,
        w::TaskType::Testing => TaskType::Testing,
        w::TaskType::Analysis => TaskType::Analysis,
        w::TaskType::Documentation => TaskType::Documentation,
    }
}

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 512;
/// Longest label.
const MAX_LABEL_BYTES: usize = 64;
/// Longest description, condition, action or domain.
const MAX_TEXT_BYTES: usize = 4096;
/// Longest `data-json`.
const MAX_DATA_BYTES: usize = 16 * 1024;
/// Most tools per pattern, and the longest tool name.
const MAX_TOOLS: usize = 32;
const MAX_TOOL_BYTES: usize = 256;
/// Most evidence ids per record.
const MAX_IDS: usize = 1_000;

/// Why an analyzer's output was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output has more records, or more bytes, than the analyzer's
    /// limits allow; says how many.
    #[error("output too large: {0}")]
    TooLarge(String),
    /// A record breaks the contract (an empty or oversize field, a value
    /// out of 0..1, no samples, evidence not from the batch); says which.
    #[error("malformed output: {0}")]
    Malformed(String),
}

fn check_text(what: &str, s: &str, max: usize, required: bool) -> Result<(), OutputError> {
    if required && s.trim().is_empty() {
        return Err(OutputError::Malformed(format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(OutputError::Malformed(format!("{what} is {} bytes; the limit is {max}", s.len())));
    }
    Ok(())
}

fn check_unit(what: &str, x: f64) -> Result<(), OutputError> {
    if !(0.0..=1.0).contains(&x) {
        return Err(OutputError::Malformed(format!("{what} is {x}; it must be a number in 0..1")));
    }
    Ok(())
}

fn evidence(what: &str, e: w::Evidence, batch: &HashSet<String>) -> Result<Evidence, OutputError> {
    check_unit(&format!("{what} success-rate"), e.success_rate)?;
    if e.sample_size == 0 {
        return Err(OutputError::Malformed(format!("{what} has a sample size of 0")));
    }
    if e.episode_ids.len() > MAX_IDS {
        return Err(OutputError::Malformed(format!("{what} cites {} episodes; the limit is {MAX_IDS}", e.episode_ids.len())));
    }
    if let Some(bad) = e.episode_ids.iter().find(|id| !batch.contains(*id)) {
        return Err(OutputError::Malformed(format!("{what} cites episode {bad:?}, which is not in the batch")));
    }
    let n = u64::from(e.sample_size);
    let mut ids = e.episode_ids;
    let excess = ids.len().saturating_sub(super::model::MAX_EVIDENCE_IDS);
    ids.drain(..excess);
    // The analyzer reports a rate; the successes it stands for are counted
    // by the tallies component when the record is merged (`merge-evidence`),
    // which every record passes through before it is stored.
    Ok(Evidence { episode_ids: ids, sample_size: n, successes: 0.0, success_rate: e.success_rate })
}

fn output_bytes(a: &Analysis) -> u64 {
    let p: usize = a
        .patterns
        .iter()
        .map(|p| {
            p.key.len()
                + p.label.len()
                + p.description.len()
                + p.data_json.len()
                + p.tools.iter().map(String::len).sum::<usize>()
                + p.evidence.episode_ids.iter().map(String::len).sum::<usize>()
                + 64
        })
        .sum();
    let h: usize = a
        .heuristics
        .iter()
        .map(|h| h.key.len() + h.condition.len() + h.action.len() + h.evidence.episode_ids.iter().map(String::len).sum::<usize>() + 64)
        .sum();
    (p + h) as u64
}

/// Checks an analyzer's whole output against the contract and `limits`,
/// and turns it into records. Any violation refuses the whole batch's
/// output: a hostile analyzer gets nothing stored.
pub fn accept(
    a: Analysis,
    batch: &HashSet<String>,
    limits: &AnalyzerLimits,
    provenance: &Provenance,
    now: DateTime<Utc>,
) -> Result<Vec<StoredPattern>, OutputError> {
    let max = limits.max_patterns as usize;
    if a.patterns.len() > max || a.heuristics.len() > max {
        return Err(OutputError::TooLarge(format!(
            "{} patterns and {} heuristics; the limit is {max} of each per batch",
            a.patterns.len(),
            a.heuristics.len()
        )));
    }
    let bytes = output_bytes(&a);
    if bytes > limits.max_output_bytes {
        return Err(OutputError::TooLarge(format!("{bytes} bytes; the limit is {}", limits.max_output_bytes)));
    }
    let mut out = Vec::with_capacity(a.patterns.len() + a.heuristics.len());
    let record = |kind, key: String, ev: Evidence, confidence| StoredPattern {
        pattern_id: pattern_id(&provenance.analyzer, kind, &key),
        kind,
        key,
        label: String::new(),
        description: String::new(),
        domain: None,
        task_type: None,
        tools: Vec::new(),
        condition: None,
        action: None,
        data: Value::Object(Default::default()),
        evidence: ev,
        confidence,
        provenance: provenance.clone(),
        first_seen: now,
        last_seen: now,
        effectiveness: Effectiveness::default(),
    };
    for (i, p) in a.patterns.into_iter().enumerate() {
        let what = format!("pattern {i} ({:?})", p.key.chars().take(60).collect::<String>());
        check_text(&format!("{what} key"), &p.key, MAX_KEY_BYTES, true)?;
        check_text(&format!("{what} label"), &p.label, MAX_LABEL_BYTES, false)?;
        check_text(&format!("{what} description"), &p.description, MAX_TEXT_BYTES, true)?;
        for s in [&p.condition, &p.action, &p.domain].into_iter().flatten() {
            check_text(&what, s, MAX_TEXT_BYTES, false)?;
        }
        if p.tools.len() > MAX_TOOLS || p.tools.iter().any(|t| t.is_empty() || t.len() > MAX_TOOL_BYTES) {
            return Err(OutputError::Malformed(format!("{what} tools: at most {MAX_TOOLS} non-empty names of at most {MAX_TOOL_BYTES} bytes")));
        }
        check_unit(&format!("{what} confidence"), p.confidence)?;
        if p.data_json.len() > MAX_DATA_BYTES {
            return Err(OutputError::Malformed(format!("{what} data-json is {} bytes; the limit is {MAX_DATA_BYTES}", p.data_json.len())));
        }
        let data = match serde_json::from_str::<Value>(&p.data_json) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(OutputError::Malformed(format!("{what} data-json is not a JSON object"))),
        };
        let kind = match p.kind {
            w::PatternKind::ToolSequence => PatternKind::ToolSequence,
            w::PatternKind::DecisionPoint => PatternKind::DecisionPoint,
            w::PatternKind::ErrorRecovery => PatternKind::ErrorRecovery,
            w::PatternKind::ContextPattern => PatternKind::ContextPattern,
            w::PatternKind::Custom => PatternKind::Custom,
        };
        let ev = evidence(&what, p.evidence, batch)?;
        let mut r = record(kind, p.key, ev, p.confidence);
        r.label = if p.label.is_empty() { format!("{kind:?}") } else { p.label };
        r.description = p.description;
        r.domain = p.domain;
        r.task_type = p.task_type.map(task_type_from_wit);
        r.tools = p.tools;
        r.condition = p.condition;
        r.action = p.action;
        r.data = data;
        out.push(r);
    }
    for (i, h) in a.heuristics.into_iter().enumerate() {
        let what = format!("heuristic {i} ({:?})", h.key.chars().take(60).collect::<String>());
        check_text(&format!("{what} key"), &h.key, MAX_KEY_BYTES, true)?;
        check_text(&format!("{what} condition"), &h.condition, MAX_TEXT_BYTES, true)?;
        check_text(&format!("{what} action"), &h.action, MAX_TEXT_BYTES, true)?;
        if let Some(d) = &h.domain {
            check_text(&what, d, MAX_TEXT_BYTES, false)?;
        }
        check_unit(&format!("{what} confidence"), h.confidence)?;
        let ev = evidence(&what, h.evidence, batch)?;
        let mut r = record(PatternKind::Heuristic, h.key, ev, h.confidence);
        r.label = "heuristic".into();
        r.description = format!("when {}: {}", h.condition, h.action);
        r.domain = h.domain;
        r.condition = Some(h.condition);
        r.action = Some(h.action);
        out.push(r);
    }
    Ok(out)
}
