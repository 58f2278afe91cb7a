//! Learned patterns and heuristics as stored and returned: what an
//! analyzer reported, merged across batches, with provenance and the
//! effectiveness agents report back.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::memory::model::TaskType;

/// Episode ids one record keeps as evidence (the most recent).
pub const MAX_EVIDENCE_IDS: usize = 20;

/// What kind of regularity a pattern describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// A recurring order of tool calls (`tools`, in order) seen in episodes of one kind of task.
    ToolSequence,
    /// A point where episodes chose between actions: `condition` is what was observed, `action` what was done.
    DecisionPoint,
    /// A failing step fixed by a successful one within the next 3 steps: `condition` is the error, `action` and `tools` the recovery.
    ErrorRecovery,
    /// A circumstance of the task (language, framework, complexity, a tag) that goes with success or failure in a domain and task type.
    ContextPattern,
    /// Defined by a third-party analyzer; `label` says what.
    Custom,
    /// A condition → action rule.
    Heuristic,
}

impl PatternKind {
    /// Kinds that suggest something to do (context patterns describe
    /// circumstances; heuristics are listed on their own).
    pub fn is_recommendable(self) -> bool {
        matches!(self, Self::ToolSequence | Self::DecisionPoint | Self::ErrorRecovery | Self::Custom)
    }
}

/// Why a record is believed, summed over every batch that reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// The most recent supporting episodes.
    pub episode_ids: Vec<String>,
    /// Supporting observations.
    pub sample_size: u64,
    /// Successes among them (partial successes count half).
    pub successes: f64,
    /// `successes / sample_size`.
    pub success_rate: f64,
}

/// What agents reported after using a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Effectiveness {
    /// Times returned by search or recommendation.
    pub times_retrieved: u64,
    /// Times an agent reported applying it.
    pub times_applied: u64,
    /// Times an agent reported seeing it and not applying it.
    pub times_declined: u64,
    /// Successes when applied (partial successes count half).
    pub successes_when_applied: f64,
    /// Feedback that linked an episode with a reward: the sum and count of
    /// (that reward − the mean reward of comparable episodes).
    pub reward_delta_sum: f64,
    /// Number of such feedback reports that carried a reward delta (the divisor of `reward_delta_sum`).
    pub reward_delta_count: u64,
}

/// Which analyzer reported a record, and from which component bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    /// The analyzer's name, as its component declares it.
    pub analyzer: String,
    /// The analyzer's version, as its component declares it.
    pub analyzer_version: String,
    /// blake3 of the analyzer's component, hex.
    pub component_blake3: String,
}

/// A learned pattern or heuristic as stored and returned to agents: the analyzer's report merged across batches, with its evidence, provenance and effectiveness feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredPattern {
    /// Stable id of the record, derived from the analyzer, kind and key (see [`pattern_id`]); pass it back when reporting feedback.
    pub pattern_id: Uuid,
    /// What kind of regularity this is.
    pub kind: PatternKind,
    /// The analyzer's stable key; equal keys from one analyzer merge.
    pub key: String,
    /// Short name of the pattern's kind as the analyzer labels it (for `custom`, the kind the analyzer defines).
    pub label: String,
    /// What the pattern says, in a sentence or two.
    pub description: String,
    /// The domain the pattern was seen in; absent when it holds across domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The task type it was seen in; absent when it holds across task types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<TaskType>,
    /// Tools involved, in order (tool sequences and recoveries); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// For decision points, recoveries and heuristics: the situation that was observed; absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// For decision points, recoveries and heuristics: what was done in that situation; absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Analyzer-specific detail.
    pub data: Value,
    /// Episodes and successes that support the record.
    pub evidence: Evidence,
    /// The analyzer's confidence, averaged over observations, 0..1.
    pub confidence: f64,
    /// Which analyzer reported it.
    pub provenance: Provenance,
    /// When an analyzer first reported it.
    pub first_seen: DateTime<Utc>,
    /// When an analyzer last reported it (updated on every merge).
    pub last_seen: DateTime<Utc>,
    /// What agents reported after retrieving and applying it.
    pub effectiveness: Effectiveness,
}

/// The id of `key` as reported by `analyzer`: stable across restarts.
pub fn pattern_id(analyzer: &str, kind: PatternKind, key: &str) -> Uuid {
    let mut h = blake3::Hasher::new();
    h.update(analyzer.as_bytes());
    h.update(&[0]);
    h.update(if kind == PatternKind::Heuristic { b"h" } else { b"p" });
    h.update(&[0]);
    h.update(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.finalize().as_bytes()[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

impl StoredPattern {
    /// Takes a newer report of the same record: its episode ids join the
    /// evidence (the most recent [`MAX_EVIDENCE_IDS`] kept) and its
    /// descriptive fields replace these. The numbers (evidence and
    /// confidence) are the tallies component's (see
    /// [`super::tallies`]), set by the caller.
    pub fn adopt(&mut self, new: StoredPattern) {
        for id in new.evidence.episode_ids {
            if !self.evidence.episode_ids.contains(&id) {
                self.evidence.episode_ids.push(id);
            }
        }
        let excess = self.evidence.episode_ids.len().saturating_sub(MAX_EVIDENCE_IDS);
        self.evidence.episode_ids.drain(..excess);
        self.label = new.label;
        self.description = new.description;
        self.tools = new.tools;
        self.condition = new.condition;
        self.action = new.action;
        self.data = new.data;
        self.provenance = new.provenance;
        self.last_seen = new.last_seen;
    }

    /// The words it is found by.
    pub fn search_text(&self) -> String {
        let mut t = format!("{} {} {}", self.label, self.description, self.tools.join(" "));
        for s in [&self.condition, &self.action, &self.domain].into_iter().flatten() {
            t.push(' ');
            t.push_str(s);
        }
        if let Some(tt) = self.task_type {
            t.push(' ');
            t.push_str(&serde_json::to_value(tt).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
        }
        t
    }
}
