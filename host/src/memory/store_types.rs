//! What the episode store takes (a new episode, a new step, its options),
//! what it reports (its stats) and how it fails ([`StoreError`]), with the
//! on-disk layout version and the JSON codec of its records. The store
//! itself is `episode_store.rs`.
//!
//! ```
//! use memory_mcp::memory::{StoreError, StoreOptions};
//!
//! assert!(StoreOptions::default().sync_on_complete);
//! let e = StoreError::NotFound(uuid::Uuid::nil());
//! assert!(e.to_string().contains("not found"));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::coverage::IndexCoverage;
use super::model::{Invalid, MAX_STEPS, StepResult, TaskContext, TaskType};

/// The on-disk layout version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
/// Why a store operation did not happen.
pub enum StoreError {
    /// The input broke a rule; nothing was stored.
    #[error("invalid input: {0}")]
    Invalid(#[from] Invalid),
    /// No episode has this id.
    #[error("episode {0} not found")]
    NotFound(Uuid),
    /// The episode was completed before; it takes no more changes.
    #[error("episode {0} is already completed")]
    Completed(Uuid),
    /// A step arrived while the episode was being judged for completion.
    #[error("episode {episode} got a step while it was being completed (the analysis saw {judged} steps, it has {now}); nothing was stored: complete it again")]
    StepsChanged {
        /// The episode being completed.
        episode: Uuid,
        /// Steps the analysis judged.
        judged: u32,
        /// Steps the episode has now.
        now: u32,
    },
    /// Steps must be numbered 1, 2, 3... without gaps.
    #[error("step_number {got} is out of order: episode {episode} expects step {expected}")]
    StepOrder {
        /// The episode.
        episode: Uuid,
        /// The step number it expects next.
        expected: u32,
        /// The step number given.
        got: u32,
    },
    /// The episode has [`MAX_STEPS`] steps already.
    #[error("episode {0} has reached the limit of {MAX_STEPS} steps")]
    TooManySteps(Uuid),
    /// Another process holds the data dir's lock.
    #[error(
        "the data dir {0} is in use by another memory-mcp process; stop it or pass a different --data-dir"
    )]
    Locked(PathBuf),
    /// The data dir was written by a build with another schema.
    #[error("the data dir uses schema version {found}; this build reads version {SCHEMA_VERSION}")]
    Schema {
        /// The version the data dir records.
        found: String,
    },
    /// fjall failed; nothing was stored.
    #[error("storage failure (nothing was stored): {0}")]
    Storage(#[from] fjall::Error),
    /// The write reached fjall but not the disk.
    #[error("the write could not be made durable ({0}); it is not acknowledged and may not survive a restart")]
    NotDurable(fjall::Error),
    /// A stored record could not be decoded.
    #[error("corrupt record in {keyspace}: {detail}")]
    Corrupt {
        /// The keyspace it is in.
        keyspace: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// A store operation's result.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A new episode's fields.
#[derive(Debug, Clone)]
pub struct NewEpisode {
    /// The task, in the agent's words.
    pub task_description: String,
    /// The area the task belongs to.
    pub domain: String,
    /// The kind of work.
    pub task_type: TaskType,
    /// Where the task runs.
    pub context: TaskContext,
    /// The agent's key/value notes.
    pub metadata: BTreeMap<String, String>,
}

/// A step as the caller gives it.
#[derive(Debug, Clone)]
pub struct NewStep {
    /// Must be the episode's step count plus one.
    pub step_number: u32,
    /// When it happened; now when absent.
    pub timestamp: Option<DateTime<Utc>>,
    /// The tool used.
    pub tool: String,
    /// What was done with it.
    pub action: String,
    /// The tool's arguments.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// What the step produced.
    pub result: StepResult,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// Model tokens used, when known.
    pub tokens_used: Option<u64>,
}

/// Storage figures for `health_check` and `get_metrics`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StoreStats {
    /// Episodes stored.
    pub episodes: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Of those, in progress.
    pub in_progress: u64,
    /// The data dir's size on disk.
    pub disk_bytes: u64,
    /// The last time the journal was made durable.
    pub last_sync: Option<DateTime<Utc>>,
    /// The data dir's schema version.
    pub schema_version: u32,
    /// The data dir.
    pub path: String,
    /// The search index: `building` (queries cover the newest `indexed`
    /// of `total` episodes) or `ready`.
    pub index: IndexCoverage,
}

/// How the store trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// fsync on completion and deletion (the default). Off only for bulk
    /// loads such as benchmarks: completions then survive a process crash
    /// but not a power loss.
    pub sync_on_complete: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { sync_on_complete: true }
    }
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Our own types always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(keyspace: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { keyspace, detail: e.to_string() })
}
