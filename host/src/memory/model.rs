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
/// The kind of work an episode is.
pub enum TaskType {
    /// Writing new code.
    CodeGeneration,
    /// Finding and fixing a fault.
    Debugging,
    /// Restructuring code without changing what it does.
    Refactoring,
    /// Writing or running tests.
    Testing,
    /// Studying code, data or a system.
    Analysis,
    /// Writing documentation.
    Documentation,
}

impl TaskType {
    /// Every task type, in code order.
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
/// How hard a task is, as the agent judged it.
pub enum Complexity {
    /// A small, routine change.
    Simple,
    /// The default.
    #[default]
    Moderate,
    /// Many parts or much uncertainty.
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
/// How an episode ended, in one word.
pub enum OutcomeType {
    /// The task was done.
    Success,
    /// Some sub-goals were done, others not.
    PartialSuccess,
    /// The task was not done.
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
/// How one step ended.
pub enum StepStatus {
    /// The step did what it meant to.
    Success,
    /// The step failed.
    Error,
    /// The step ran out of time.
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
    /// Its place in the episode, from 1, without gaps.
    pub step_number: u32,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// The tool the agent used, e.g. "edit".
    pub tool: String,
    /// What the agent did with it, in words.
    pub action: String,
    /// The tool's arguments, at most 64 KiB as JSON.
    pub parameters: Map<String, Value>,
    /// What the step produced.
    pub result: StepResult,
    /// How long the step took, in milliseconds.
    pub latency_ms: u64,
    /// Model tokens the step used, when the agent reported them.
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
    /// The reward, 0..2.
    pub total: f64,
    /// From the outcome: 1 for success, the completed share for partial
    /// success (0.5 with no parts listed), 0 for failure.
    pub base: f64,
    /// Many steps or a long run lower it, 0.5..1.2.
    pub efficiency: f64,
    /// Harder tasks (by the context's complexity) earn more.
    pub complexity_bonus: f64,
    /// Test or coverage artifacts raise it, failed steps lower it,
    /// 0.8..1.2.
    pub quality_multiplier: f64,
    /// Why each part has its value.
    pub explanation: Vec<String>,
}

/// Derived deterministically from the steps on completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reflection {
    /// What went well.
    pub successes: Vec<String>,
    /// What to do better next time.
    pub improvements: Vec<String>,
    /// Lessons that carry over to other tasks.
    pub insights: Vec<String>,
}

/// An episode's header, stored apart from its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeHeader {
    /// The episode's id.
    pub episode_id: Uuid,
    /// The task, in the agent's words.
    pub task_description: String,
    /// The area the task belongs to, e.g. "web-api".
    pub domain: String,
    /// The kind of work.
    pub task_type: TaskType,
    /// Where the task ran.
    pub context: TaskContext,
    /// When the episode was created.
    pub started_at: DateTime<Utc>,
    /// When it was completed; `None` while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How it ended, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The analyzer's reward, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
    /// The analyzer's reflection, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection: Option<Reflection>,
    /// The agent's own key/value notes, at most 64 KiB together.
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
    /// Whether the episode has been completed.
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// Wall-clock duration, for completed episodes.
    pub fn duration_ms(&self) -> Option<i64> {
        self.completed_at.map(|c| (c - self.started_at).num_milliseconds())
    }

    /// `completed` or `in_progress`, as tools report it.
    pub fn status(&self) -> &'static str {
        if self.is_complete() { "completed" } else { "in_progress" }
    }
}

/// An episode with its steps, as tools return it.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    /// Everything but the steps.
    #[serde(flatten)]
    pub header: EpisodeHeader,
    /// `completed` or `in_progress`.
    pub status: &'static str,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A bad input, with what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The input field at fault, e.g. `outcome.verdict`.
    pub field: String,
    /// What is wrong with it, and the limit where there is one.
    pub problem: String,
}

/// An [`Invalid`] for `field`.
pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A short text field: not empty when `required`, at most
/// [`MAX_SHORT_CHARS`] characters.
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

/// A long text field: at most [`MAX_TEXT_BYTES`] bytes.
pub fn check_text(field: &str, s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(invalid(field, format!("is {} bytes; the limit is {MAX_TEXT_BYTES}", s.len())));
    }
    Ok(())
}

/// A list of short texts: at most [`MAX_LIST_ITEMS`] items, each a valid
/// short text.
pub fn check_list(field: &str, items: &[String]) -> Result<(), Invalid> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(invalid(field, format!("has {} items; the limit is {MAX_LIST_ITEMS}", items.len())));
    }
    for (i, item) in items.iter().enumerate() {
        check_short(&format!("{field}[{i}]"), item, false)?;
    }
    Ok(())
}

/// A task description: not blank, at most [`MAX_DESCRIPTION_CHARS`]
/// characters.
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

/// A task context's language, framework and tags.
pub fn check_context(c: &TaskContext) -> Result<(), Invalid> {
    if let Some(l) = &c.language {
        check_short("context.language", l, false)?;
    }
    if let Some(f) = &c.framework {
        check_short("context.framework", f, false)?;
    }
    check_list("context.tags", &c.tags)
}

/// Episode metadata: at most [`MAX_LIST_ITEMS`] entries and
/// [`MAX_METADATA_BYTES`] as JSON.
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

/// An outcome's verdict, lists and texts.
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
