//! The host's calls to the episode analysis
//! (`memory-mcp:patterns/episode-analysis@0.2.0`, exported by the built-in
//! analyzer): an episode's reward and reflection when it completes, the
//! quality report, and metric time series. The host gathers the rows
//! (headers and steps) and stores or shows what comes back; it computes
//! none of it.
//!
//! Each call runs on a fresh instance of the built-in analyzer's
//! `InstancePre`, under its limits and epoch yields
//! ([`super::analyzers::Analyzer`]'s call path).
//!
//! Completing an episode reads its header and steps, calls the component
//! with no store lock held, then stores the completion only if the episode
//! still has the steps the component saw; a step added meanwhile makes it
//! start over (at most [`COMPLETE_ATTEMPTS`] times). A component failure
//! stores nothing: the episode stays in progress and can be completed
//! again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::analyzers::{Analyzer, AnalyzerSet, Failure};
use super::convert::episode_to_wit;
use crate::memory::completion::{Completion, Judged};
use crate::memory::model::{Episode, EpisodeHeader, Outcome, OutcomeType, Reflection, Reward, TaskType};
use crate::memory::{EpisodeStore, StoreError};
use crate::world::episode_analysis as wea;
use crate::world::{statistics, types};

/// The interface the built-in analyzer exports for these calls.
pub const EPISODE_ANALYSIS_EXPORT: &str = "memory-mcp:patterns/episode-analysis@0.2.0";
/// How many times completing starts over when steps keep arriving.
pub const COMPLETE_ATTEMPTS: usize = 3;

/// Why completing an episode failed. Nothing was stored in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// The store refused or failed (not found, already completed, bad
    /// outcome, storage).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The component failed (trap, limit, error).
    #[error("episode {0} was not completed: the episode analysis {1}; it is still in progress and nothing was lost, complete it again")]
    Analysis(Uuid, Failure),
    /// Steps kept arriving while it was being completed.
    #[error("episode {0} was not completed: steps kept arriving while it was being completed ({COMPLETE_ATTEMPTS} attempts); complete it again once its steps are in")]
    Busy(Uuid),
    /// A blocking storage task failed to run.
    #[error("storage task failed: {0}")]
    Task(String),
}

async fn blocking<T: Send + 'static>(
    store: &Arc<EpisodeStore>,
    f: impl FnOnce(&EpisodeStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, CompleteError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| CompleteError::Task(e.to_string()))?.map_err(Into::into)
}

impl Analyzer {
    fn episode_analysis(&self) -> Result<&wea::GuestIndices, Failure> {
        self.episode_analysis
            .as_ref()
            .ok_or_else(|| Failure::Reported(format!("{} does not export {EPISODE_ANALYSIS_EXPORT}", self.name())))
    }

    /// The reward and reflection of `episode` (its outcome set), completing
    /// `duration_ms` after its start.
    pub async fn judge(&self, set: &AnalyzerSet, episode: &types::Episode, duration_ms: i64) -> Result<wea::Judgement, Failure> {
        let ix = self.episode_analysis()?;
        let out = self
            .call(set.memory(), async |store, instance| {
                ix.load(&mut *store, instance)?.call_judge(&mut *store, episode, duration_ms).await
            })
            .await?;
        out.map_err(Failure::Reported)
    }

    /// The quality report over `episodes`.
    pub async fn report_quality(
        &self,
        set: &AnalyzerSet,
        episodes: &[wea::EpisodeSummary],
        request: wea::QualityRequest,
    ) -> Result<wea::QualityReport, Failure> {
        let ix = self.episode_analysis()?;
        self.call(set.memory(), async |store, instance| {
            ix.load(&mut *store, instance)?.call_report_quality(&mut *store, episodes, request).await
        })
        .await
    }

    /// Metric series over `episodes`; `Ok(Err(_))` is the component's
    /// answer to bad input (an unknown metric, nothing completed).
    pub async fn episode_series(
        &self,
        set: &AnalyzerSet,
        episodes: &[wea::EpisodeSummary],
        metrics: &[String],
        bucket_size: Option<u32>,
    ) -> Result<Result<Vec<statistics::Series>, String>, Failure> {
        let ix = self.episode_analysis()?;
        self.call(set.memory(), async |store, instance| {
            ix.load(&mut *store, instance)?.call_episode_series(&mut *store, episodes, metrics, bucket_size).await
        })
        .await
    }
}

/// Completes episode `id` with `outcome`: the built-in analyzer judges it,
/// the store keeps the outcome with that reward and reflection.
pub async fn complete_episode(set: &AnalyzerSet, id: Uuid, outcome: Outcome) -> Result<EpisodeHeader, CompleteError> {
    let store = set.memory();
    for _ in 0..COMPLETE_ATTEMPTS {
        let o = outcome.clone();
        let (mut header, steps) = blocking(store, move |s| s.completion_input(id, &o)).await?;
        let completed_at = Utc::now();
        let duration_ms = (completed_at - header.started_at).num_milliseconds();
        let seen = u32::try_from(steps.len()).unwrap_or(u32::MAX);
        header.outcome = Some(outcome.clone());
        let episode = episode_to_wit(Episode { status: header.status(), header, steps });
        let j = set.builtin.judge(set, &episode, duration_ms).await.map_err(|f| CompleteError::Analysis(id, f))?;
        let judged = Judged { reward: reward(j.reward), reflection: reflection(j.reflection), steps: seen, completed_at };
        let completion = Completion { outcome: outcome.clone(), judged: Some(judged) };
        match blocking(store, move |s| s.complete_episode(id, completion)).await {
            Err(CompleteError::Store(StoreError::StepsChanged { .. })) => continue,
            done => return done,
        }
    }
    Err(CompleteError::Busy(id))
}

fn reward(r: wea::Reward) -> Reward {
    Reward {
        total: r.total,
        base: r.base,
        efficiency: r.efficiency,
        complexity_bonus: r.complexity_bonus,
        quality_multiplier: r.quality_multiplier,
        explanation: r.explanation,
    }
}

fn reflection(r: types::Reflection) -> Reflection {
    Reflection { successes: r.successes, improvements: r.improvements, insights: r.insights }
}

/// Nanoseconds since the Unix epoch (saturating past the year 2262).
pub fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// What the quality report and the series read of a stored episode.
pub fn summary(h: &EpisodeHeader) -> wea::EpisodeSummary {
    wea::EpisodeSummary {
        started_at_ns: nanos(h.started_at),
        completed_at_ns: h.completed_at.map(nanos),
        outcome: h.outcome.as_ref().map(|o| match o.outcome_type {
            OutcomeType::Success => types::OutcomeType::Success,
            OutcomeType::PartialSuccess => types::OutcomeType::PartialSuccess,
            OutcomeType::Failure => types::OutcomeType::Failure,
        }),
        reward: h.reward.as_ref().map(|r| r.total),
        step_count: h.step_count,
    }
}

/// The stored episodes in `domain` and of `task_type` (each when given),
/// in creation order, as the series read them.
pub fn series_rows(store: &EpisodeStore, domain: Option<&str>, task_type: Option<TaskType>) -> Result<Vec<wea::EpisodeSummary>, StoreError> {
    Ok(store
        .headers_since(None)?
        .iter()
        .filter(|h| domain.is_none_or(|d| h.domain == d) && task_type.is_none_or(|t| h.task_type == t))
        .map(summary)
        .collect())
}
