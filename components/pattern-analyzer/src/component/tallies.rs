//! The `tallies` export (`memory-mcp:patterns/tallies@0.3.0`): WIT records
//! mapped onto [`crate::tallies`]' plain types and back.

use super::Component;
use super::exports::memory_mcp::patterns0_3_0::tallies::{self as w, Guest};
use super::memory_mcp::memory::types::OutcomeType;
use crate::model as m;
use crate::tallies::{feedback, merge};

impl Guest for Component {
    fn merge_evidence(merges: Vec<w::Merge>) -> Result<Vec<w::Evidence>, String> {
        let merges = merges
            .into_iter()
            .map(|x| (x.stored.map(evidence_in), x.observations.into_iter().map(observation).collect()))
            .collect();
        Ok(merge::merge_all(merges)?.into_iter().map(evidence_out).collect())
    }

    fn apply_feedback(current: w::Effectiveness, report: w::Feedback) -> Result<w::FeedbackResult, String> {
        let report = feedback::Report {
            applied: report.applied,
            outcome: match report.outcome {
                OutcomeType::Success => m::OutcomeType::Success,
                OutcomeType::PartialSuccess => m::OutcomeType::PartialSuccess,
                OutcomeType::Failure => m::OutcomeType::Failure,
            },
            episode: report.episode.map(|e| feedback::EpisodeReward {
                reward: e.reward,
                comparable_sum: e.comparable.sum,
                comparable_count: e.comparable.count,
            }),
        };
        let current = feedback::Effectiveness {
            times_applied: current.times_applied,
            times_declined: current.times_declined,
            successes_when_applied: current.successes_when_applied,
            reward_delta_sum: current.reward_delta_sum,
            reward_delta_count: current.reward_delta_count,
        };
        let c = feedback::count(current, report)?;
        let e = c.effectiveness;
        Ok(w::FeedbackResult {
            effectiveness: w::Effectiveness {
                times_applied: e.times_applied,
                times_declined: e.times_declined,
                successes_when_applied: e.successes_when_applied,
                reward_delta_sum: e.reward_delta_sum,
                reward_delta_count: e.reward_delta_count,
            },
            reward_delta: c.reward_delta,
        })
    }
}

fn observation(o: w::Observation) -> merge::Observation {
    merge::Observation { sample_size: o.sample_size, success_rate: o.success_rate, confidence: o.confidence }
}

fn evidence_in(e: w::Evidence) -> merge::Evidence {
    merge::Evidence { sample_size: e.sample_size, successes: e.successes, success_rate: e.success_rate, confidence: e.confidence }
}

fn evidence_out(e: merge::Evidence) -> w::Evidence {
    w::Evidence { sample_size: e.sample_size, successes: e.successes, success_rate: e.success_rate, confidence: e.confidence }
}
