//! What completing an episode stores: its outcome and, from the episode
//! analysis component, its reward and reflection. The store computes
//! neither; it checks that the analysis is of the episode as it still is.

use chrono::{DateTime, Utc};

use super::model::{Outcome, Reflection, Reward};

/// The analysis of an episode about to be completed, made from the header
/// and steps [`super::EpisodeStore::completion_input`] returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The reward the analysis gave.
    pub reward: Reward,
    /// The reflection the analysis derived.
    pub reflection: Reflection,
    /// How many steps the analysis saw: the completion is refused
    /// ([`super::StoreError::StepsChanged`]) if the episode has more now.
    pub steps: u32,
    /// The completion time the analysis measured the duration to.
    pub completed_at: DateTime<Utc>,
}

/// A completion as [`super::EpisodeStore::complete_episode`] stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// How the episode ended.
    pub outcome: Outcome,
    /// Its analysis; none stores the outcome alone (no reward, no
    /// reflection), as storage-level tools and tests do. The server's
    /// `complete_episode` always passes one.
    pub judged: Option<Judged>,
}

impl From<Outcome> for Completion {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, judged: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::episode_store::{NewEpisode, NewStep};
    use crate::memory::model::{OutcomeType, StepResult, StepStatus, TaskContext, TaskType};
    use crate::memory::{EpisodeStore, StoreError};

    fn outcome() -> Outcome {
        Outcome {
            outcome_type: OutcomeType::Success,
            verdict: "ok".into(),
            artifacts: vec![],
            completed: vec![],
            failed: vec![],
            reason: None,
            error_details: None,
        }
    }

    fn judged(steps: u32) -> Judged {
        Judged {
            reward: Reward {
                total: 1.1,
                base: 1.0,
                efficiency: 1.1,
                complexity_bonus: 1.0,
                quality_multiplier: 1.0,
                explanation: vec!["given".into()],
            },
            reflection: Reflection { successes: vec!["given".into()], ..Default::default() },
            steps,
            completed_at: Utc::now(),
        }
    }

    #[test]
    fn an_analysis_of_fewer_steps_than_stored_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = EpisodeStore::open(dir.path()).unwrap();
        let new = NewEpisode {
            task_description: "t".into(),
            domain: "d".into(),
            task_type: TaskType::Testing,
            context: TaskContext::default(),
            metadata: Default::default(),
        };
        let id = store.create_episode(new).unwrap();
        let (h, steps) = store.completion_input(id, &outcome()).unwrap();
        assert!(!h.is_complete() && steps.is_empty());
        let step = NewStep {
            step_number: 1,
            timestamp: None,
            tool: "x".into(),
            action: "y".into(),
            parameters: Default::default(),
            result: StepResult { status: StepStatus::Success, output: None, message: None },
            latency_ms: 1,
            tokens_used: None,
        };
        store.add_step(id, step).unwrap();
        let stale = Completion { outcome: outcome(), judged: Some(judged(0)) };
        assert!(matches!(store.complete_episode(id, stale), Err(StoreError::StepsChanged { judged: 0, now: 1, .. })));
        assert!(!store.get_header(id).unwrap().is_complete(), "nothing was stored");
        let fresh = Judged { ..judged(1) };
        let at = fresh.completed_at;
        let done = store.complete_episode(id, Completion { outcome: outcome(), judged: Some(fresh) }).unwrap();
        assert_eq!(done.completed_at, Some(at));
        assert_eq!(done.reflection.map(|r| r.successes), Some(vec!["given".to_string()]));
        assert!(matches!(store.completion_input(id, &outcome()), Err(StoreError::Completed(_))));
    }
}
