//! The episode data model (the seed's, kept), its input forms, and their
//! validation. Every limit here is checked before anything is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Longest task description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Largest step `parameters`, as JSON bytes.
pub const MAX_PARAMETERS_BYTES: usize = 64 * 1024;
/// Most steps one episode may have.
pub const MAX_STEPS: u32 = 10_000;
/// Longest short text field (domain, tool, action, tag, verdict...).
pub const MAX_SHORT_CHARS: usize = 1_000;
/// Longest step output or message, and outcome reason or error details.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Most tags, artifacts, metadata entries...
pub const MAX_LIST_ITEMS: usize = 100;
/// Largest episode metadata, all entries together, as JSON bytes: the
/// header is read on every query hit and rewritten on every update.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    CodeGeneration,
    Debugging,
    Refactoring,
    Testing,
    Analysis,
    Documentation,
}

impl TaskType {
    pub const ALL: [TaskType; 6] = [
        TaskType::CodeGeneration,
        TaskType::Debugging,
        TaskType::Refactoring,
        TaskType::Testing,
        TaskType::Analysis,
        TaskType::Documentation,
    ];

    /// A one-byte code for index keys.
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Simple,
    #[default]
    Moderate,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeType {
    Success,
    PartialSuccess,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Success,
    Error,
    Timeout,
}

/// Where the task ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskContext {
    /// Programming language, e.g. "rust".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Framework or library, e.g. "axum".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// How hard the task is: simple, moderate (default) or complex.
    #[serde(default)]
    pub complexity: Complexity,
    /// Free tags, at most 100.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// success, error or timeout.
    #[serde(rename = "type")]
    pub status: StepStatus,
    /// The step's output, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// What went wrong, on error or timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One action, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub step_number: u32,
    pub timestamp: DateTime<Utc>,
    pub tool: String,
    pub action: String,
    pub parameters: Map<String, Value>,
    pub result: StepResult,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_used: Option<u64>,
}

/// How an episode ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// success, partial_success or failure.
    pub outcome_type: OutcomeType,
    /// A one-line verdict.
    #[serde(default)]
    pub verdict: String,
    /// Files or results produced, e.g. "tests/api_test.rs".
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Sub-goals completed (for partial success, the completed share).
    #[serde(default)]
    pub completed: Vec<String>,
    /// Sub-goals that failed.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Why it ended this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Error text, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
}

/// The reward and its parts: `total = clamp(base × efficiency ×
/// complexity_bonus × quality_multiplier, 0, 2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reward {
    pub total: f64,
    pub base: f64,
    pub efficiency: f64,
    pub complexity_bonus: f64,
    pub quality_multiplier: f64,
    /// Why each part has its value.
    pub explanation: Vec<String>,
}

/// Derived deterministically from the steps on completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reflection {
    pub successes: Vec<String>,
    pub improvements: Vec<String>,
    pub insights: Vec<String>,
}

/// An episode's header, stored apart from its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeHeader {
    pub episode_id: Uuid,
    pub task_description: String,
    pub domain: String,
    pub task_type: TaskType,
    pub context: TaskContext,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection: Option<Reflection>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Steps appended so far; the next must be `step_count + 1`. Stored
    /// exactly once the episode is complete; while it is in progress the
    /// steps keyspace is the count (appending a step does not rewrite the
    /// header), and the store fills this in on every read.
    #[serde(default)]
    pub step_count: u32,
}

impl EpisodeHeader {
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// Wall-clock duration, for completed episodes.
    pub fn duration_ms(&self) -> Option<i64> {
        self.completed_at.map(|c| (c - self.started_at).num_milliseconds())
    }

    pub fn status(&self) -> &'static str {
        if self.is_complete() { "completed" } else { "in_progress" }
    }
}

/// An episode with its steps, as tools return it.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    #[serde(flatten)]
    pub header: EpisodeHeader,
    pub status: &'static str,
    pub steps: Vec<Step>,
}

/// A bad input, with what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

pub fn check_short(field: &str, s: &str, required: bool) -> Result<(), Invalid> {
    if required && s.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let n = s.chars().count();
    if n > MAX_SHORT_CHARS {
        return Err(invalid(field, format!("is {n} characters; the limit is {MAX_SHORT_CHARS}")));
    }
    Ok(())
}

pub fn check_text(field: &str, s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(invalid(field, format!("is {} bytes; the limit is {MAX_TEXT_BYTES}", s.len())));
    }
    Ok(())
}

pub fn check_list(field: &str, items: &[String]) -> Result<(), Invalid> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(invalid(field, format!("has {} items; the limit is {MAX_LIST_ITEMS}", items.len())));
    }
    for (i, item) in items.iter().enumerate() {
        check_short(&format!("{field}[{i}]"), item, false)?;
    }
    Ok(())
}

pub fn check_description(s: &str) -> Result<(), Invalid> {
    if s.trim().is_empty() {
        return Err(invalid("task_description", "must not be empty"));
    }
    let n = s.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "task_description",
            format!("is {n} characters; the limit is {MAX_DESCRIPTION_CHARS}"),
        ));
    }
    Ok(())
}

pub fn check_context(c: &TaskContext) -> Result<(), Invalid> {
    if let Some(l) = &c.language {
        check_short("context.language", l, false)?;
    }
    if let Some(f) = &c.framework {
        check_short("context.framework", f, false)?;
    }
    check_list("context.tags", &c.tags)
}

pub fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if m.len() > MAX_LIST_ITEMS {
        return Err(invalid("metadata", format!("has {} entries; the limit is {MAX_LIST_ITEMS}", m.len())));
    }
    for (k, v) in m {
        check_short("metadata key", k, true)?;
        check_text(&format!("metadata.{k}"), v)?;
    }
    let bytes = serde_json::to_vec(m).map_or(usize::MAX, |v| v.len());
    if bytes > MAX_METADATA_BYTES {
        return Err(invalid(
            "metadata",
            format!("is {bytes} bytes as JSON; the limit is 64 KiB ({MAX_METADATA_BYTES} bytes) for all entries together; nothing was stored"),
        ));
    }
    Ok(())
}

pub fn check_outcome(o: &Outcome) -> Result<(), Invalid> {
    check_short("outcome.verdict", &o.verdict, false)?;
    check_list("outcome.artifacts", &o.artifacts)?;
    check_list("outcome.completed", &o.completed)?;
    check_list("outcome.failed", &o.failed)?;
    if let Some(r) = &o.reason {
        check_text("outcome.reason", r)?;
    }
    if let Some(e) = &o.error_details {
        check_text("outcome.error_details", e)?;
    }
    Ok(())
}

/// Parses an episode id, with a clear message for a malformed one.
pub fn parse_id(s: &str) -> Result<Uuid, Invalid> {
    Uuid::parse_str(s).map_err(|e| invalid("episode_id", format!("{s:?} is not a UUID: {e}")))
}
