//! The host's calls to the tallies of learned records
//! (`memory-mcp:patterns/tallies@0.3.0`, exported by the built-in
//! analyzer): a batch's records merged into the stored ones, and a
//! feedback report counted into a record's effectiveness. The host passes
//! the stored numbers (and, for feedback, the reward totals of comparable
//! episodes the episode store keeps) and checks and stores what comes
//! back; it computes none of it.
//!
//! Each call runs on a fresh instance of the built-in analyzer under its
//! limits ([`super::analyzers::Analyzer`]'s call path): one call per
//! batch (per [`MAX_MERGES`] records) and one per feedback report.

use super::analyzers::{Analyzer, AnalyzerSet, Failure, TALLIES_EXPORT};
use super::convert::OutputError;
use super::model::{Effectiveness, StoredPattern};
use super::patterns::{Merge, Tally};
use crate::memory::model::OutcomeType;
use crate::memory::summaries::RewardTotals;
use crate::world::{tallies as wt, types};

/// Most merges in one call (the WIT's limit).
pub const MAX_MERGES: usize = 4096;
/// Slack for rounding when checking sums against their bounds.
const ROUNDING: f64 = 1e-9;

/// A feedback report, as `record_pattern_feedback` got it.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Whether the record was applied.
    pub applied: bool,
    /// How the task went.
    pub outcome: OutcomeType,
    /// The named episode's reward and the reward totals of its comparable
    /// episodes (itself included), when it has a reward.
    pub episode: Option<(f64, RewardTotals)>,
}

/// A record's effectiveness with a report counted, and the reward delta.
#[derive(Debug, Clone)]
pub struct Counted {
    /// The effectiveness to store (its retrieval count is the store's).
    pub effectiveness: Effectiveness,
    /// The episode's reward minus the mean of its comparable episodes'.
    pub reward_delta: Option<f64>,
}

impl Analyzer {
    fn tallies(&self) -> Result<&wt::GuestIndices, Failure> {
        self.tallies.as_ref().ok_or_else(|| Failure::Reported(format!("{} does not export {TALLIES_EXPORT}", self.name())))
    }

    /// The merged numbers of each record of `plan`, in order: one call per
    /// [`MAX_MERGES`] records.
    pub async fn merge_evidence(&self, set: &AnalyzerSet, plan: &[Merge]) -> Result<Vec<Tally>, Failure> {
        let ix = self.tallies()?;
        let mut out = Vec::with_capacity(plan.len());
        for chunk in plan.chunks(MAX_MERGES) {
            let merges: Vec<wt::Merge> = chunk.iter().map(merge_to_wit).collect();
            let got = self
                .call(set.memory(), async |store, instance| {
                    ix.load(&mut *store, instance)?.call_merge_evidence(&mut *store, &merges).await
                })
                .await?
                .map_err(Failure::Reported)?;
            if got.len() != merges.len() {
                return Err(malformed(format!("merge-evidence returned {} results for {} merges", got.len(), merges.len())));
            }
            for (i, e) in got.into_iter().enumerate() {
                out.push(checked_evidence(i, e)?);
            }
        }
        Ok(out)
    }

    /// `current` with `report` counted.
    pub async fn apply_feedback(&self, set: &AnalyzerSet, current: &Effectiveness, report: Report) -> Result<Counted, Failure> {
        let ix = self.tallies()?;
        let current = effectiveness_to_wit(current);
        let feedback = wt::Feedback {
            applied: report.applied,
            outcome: match report.outcome {
                OutcomeType::Success => types::OutcomeType::Success,
                OutcomeType::PartialSuccess => types::OutcomeType::PartialSuccess,
                OutcomeType::Failure => types::OutcomeType::Failure,
            },
            episode: report.episode.map(|(reward, t)| wt::EpisodeReward {
                reward,
                comparable: wt::RewardTotals { sum: t.sum, count: t.count },
            }),
        };
        let r = self
            .call(set.memory(), async |store, instance| {
                ix.load(&mut *store, instance)?.call_apply_feedback(&mut *store, current, feedback).await
            })
            .await?
            .map_err(Failure::Reported)?;
        checked_feedback(r)
    }
}

fn malformed(m: String) -> Failure {
    Failure::Output(OutputError::Malformed(m))
}

fn tally_to_wit(t: &Tally) -> wt::Evidence {
    wt::Evidence { sample_size: t.sample_size, successes: t.successes, success_rate: t.success_rate, confidence: t.confidence }
}

fn observation(p: &StoredPattern) -> wt::Observation {
    wt::Observation { sample_size: p.evidence.sample_size, success_rate: p.evidence.success_rate, confidence: p.confidence }
}

fn merge_to_wit(m: &Merge) -> wt::Merge {
    wt::Merge { stored: m.stored.as_ref().map(tally_to_wit), observations: m.reports.iter().map(observation).collect() }
}

fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// The `i`th merged evidence, checked against the WIT's ranges.
fn checked_evidence(i: usize, e: wt::Evidence) -> Result<Tally, Failure> {
    let n = e.sample_size as f64;
    let ok = e.sample_size >= 1
        && unit(e.success_rate)
        && unit(e.confidence)
        && e.successes.is_finite()
        && e.successes >= 0.0
        && e.successes <= n * (1.0 + ROUNDING);
    if !ok {
        return Err(malformed(format!(
            "merge-evidence result {i}: sample size {}, successes {}, success rate {}, confidence {} are out of range",
            e.sample_size, e.successes, e.success_rate, e.confidence
        )));
    }
    Ok(Tally { sample_size: e.sample_size, successes: e.successes, success_rate: e.success_rate, confidence: e.confidence })
}

fn effectiveness_to_wit(e: &Effectiveness) -> wt::Effectiveness {
    wt::Effectiveness {
        times_applied: e.times_applied,
        times_declined: e.times_declined,
        successes_when_applied: e.successes_when_applied,
        reward_delta_sum: e.reward_delta_sum,
        reward_delta_count: e.reward_delta_count,
    }
}

/// The feedback result, checked against the WIT's ranges.
fn checked_feedback(r: wt::FeedbackResult) -> Result<Counted, Failure> {
    let e = r.effectiveness;
    let applied = e.times_applied as f64;
    let ok = e.successes_when_applied.is_finite()
        && e.successes_when_applied >= 0.0
        && e.successes_when_applied <= applied * (1.0 + ROUNDING)
        && e.reward_delta_sum.is_finite()
        && e.reward_delta_count <= e.times_applied
        && r.reward_delta.is_none_or(|d| d.is_finite() && d.abs() <= 2.0 + ROUNDING);
    if !ok {
        return Err(malformed(format!(
            "apply-feedback returned successes when applied {} of {} applications, reward delta sum {} over {}, delta {:?}: out of range",
            e.successes_when_applied, e.times_applied, e.reward_delta_sum, e.reward_delta_count, r.reward_delta
        )));
    }
    Ok(Counted {
        effectiveness: Effectiveness {
            times_retrieved: 0,
            times_applied: e.times_applied,
            times_declined: e.times_declined,
            successes_when_applied: e.successes_when_applied,
            reward_delta_sum: e.reward_delta_sum,
            reward_delta_count: e.reward_delta_count,
        },
        reward_delta: r.reward_delta,
    })
}
