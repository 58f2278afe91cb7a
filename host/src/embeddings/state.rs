//! The embedding service's state types: the serving space, a job, the
//! providers' load state, a job's target and the tidy's cursor, shared by
//! the service, its workers and `health_check`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::embedder::{EmbedFailure, Embedder, ModelInfo, Space};
use super::index::VectorIndex;

/// The space whose vectors are indexed and searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Active {
    /// The space's id (hex in JSON).
    #[schemars(with = "String")]
    #[serde(with = "space_hex")]
    pub space: Space,
    /// The provider, model and dimensions it is of.
    pub info: ModelInfo,
}

mod space_hex {
    use super::Space;
    pub fn serialize<S: serde::Serializer>(s: &Space, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&s.to_string())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Space, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(de)?;
        u64::from_str_radix(&s, 16).map(Space).map_err(serde::de::Error::custom)
    }
}

/// A re-embedding of everything stored, after the space changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// Why it started (a first embedding, or the model that changed).
    pub reason: String,
    /// Items (episodes and patterns) to embed when it started.
    pub total: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The space being filled while the serving one still answers
    /// queries. Absent for a first embedding (nothing served before), and
    /// in jobs stored by older versions, which re-embedded in place.
    #[serde(default)]
    pub target: Option<Active>,
}

/// The longest wait between retries of a failing provider.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// The wait after `failures` failures in a row of a provider's load or
/// batch: 1 s, doubling, at most a minute.
pub(super) fn backoff(failures: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1u64 << failures.min(6).saturating_sub(1)).min(MAX_BACKOFF)
}

/// What the worker has done since start-up.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct WorkerStatus {
    /// Items embedded.
    pub embedded: u64,
    /// Batches sent to the provider.
    pub batches: u64,
    /// Batches the provider failed.
    pub failed_batches: u64,
    /// Failures since the last successful batch.
    pub consecutive_failures: u32,
    /// Why the last failed batch failed.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<DateTime<Utc>>,
    /// While failing: when the next batch is tried (after a backoff).
    pub next_retry_at: Option<DateTime<Utc>>,
    /// How long the last successful batch took, in milliseconds.
    pub last_batch_ms: f64,
}

impl WorkerStatus {
    /// Records the `failures`-th failure in a row, and why; returns the
    /// backoff before the next try, which it also records.
    pub(super) fn failed(&mut self, failures: u32, error: &dyn std::fmt::Display) -> std::time::Duration {
        let wait = backoff(failures);
        let now = chrono::Utc::now();
        self.consecutive_failures = failures;
        self.last_error = Some(error.to_string());
        self.last_error_at = Some(now);
        self.next_retry_at = Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
        wait
    }
}

pub(super) enum Provider {
    Loading,
    Ready(Arc<Embedder>),
    Failed(EmbedFailure),
}

/// The space being filled, its provider and its indexes.
pub(super) struct Target {
    pub active: Active,
    pub provider: Provider,
    pub episodes: VectorIndex,
    pub patterns: VectorIndex,
}

impl Target {
    pub fn new(active: Active, provider: Provider) -> Self {
        let dims = active.info.dimensions as usize;
        Self {
            episodes: VectorIndex::new(active.space, dims),
            patterns: VectorIndex::new(active.space, dims),
            active,
            provider,
        }
    }
}

/// Where the tidy is: which keyspace, and the last key handled.
#[derive(Debug, Clone, Default)]
pub(super) struct TidyCursor {
    pub vectors_phase: bool,
    pub after: Option<Vec<u8>>,
}

