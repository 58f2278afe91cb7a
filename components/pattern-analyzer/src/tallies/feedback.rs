//! A learned record's effectiveness across feedback reports: times applied
//! and declined, successes when applied (partial successes count half),
//! and the reward delta of the episode it was applied in against the mean
//! reward of comparable episodes (same domain and task type, the episode
//! itself left out).

use crate::model::OutcomeType;

/// What agents reported after using a record, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Effectiveness {
    /// Times applied.
    pub times_applied: u64,
    /// Times seen and not applied.
    pub times_declined: u64,
    /// Successes when applied (partial successes count half).
    pub successes_when_applied: f64,
    /// Sum of the reward deltas counted.
    pub reward_delta_sum: f64,
    /// How many reward deltas were counted.
    pub reward_delta_count: u64,
}

/// The episode a report names: its reward and the sum and count of the
/// rewards of its comparable episodes, itself included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeReward {
    /// Its reward's total, 0..2.
    pub reward: f64,
    /// The sum of the comparable episodes' rewards, this one's included.
    pub comparable_sum: f64,
    /// How many comparable episodes, this one included.
    pub comparable_count: u64,
}

/// One feedback report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Whether the record was applied.
    pub applied: bool,
    /// How the task went.
    pub outcome: OutcomeType,
    /// The episode named, when it has a reward.
    pub episode: Option<EpisodeReward>,
}

/// The effectiveness with the report counted, and the reward delta.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counted {
    /// The effectiveness after the report.
    pub effectiveness: Effectiveness,
    /// The episode's reward minus the mean of the others' (none without
    /// an episode or another comparable one).
    pub reward_delta: Option<f64>,
}

/// `e`'s reward minus the mean reward of its comparable episodes other
/// than itself; none when it is the only one.
pub fn reward_delta(e: EpisodeReward) -> Result<Option<f64>, String> {
    let valid = e.reward.is_finite() && e.comparable_sum.is_finite() && e.comparable_count >= 1;
    if !valid {
        return Err(format!(
            "reward {} against {} comparable episodes summing to {}: rewards are finite and the episode counts among its comparable ones",
            e.reward, e.comparable_count, e.comparable_sum
        ));
    }
    let others = e.comparable_count - 1;
    if others == 0 {
        return Ok(None);
    }
    let mean = (e.comparable_sum - e.reward) / others as f64;
    Ok(Some(e.reward - mean))
}

/// `current` with `report` counted. A reward delta counts only when the
/// record was applied; it is returned either way.
pub fn count(current: Effectiveness, report: Report) -> Result<Counted, String> {
    let reward_delta = report.episode.map(reward_delta).transpose()?.flatten();
    let mut e = current;
    if report.applied {
        e.times_applied = e.times_applied.saturating_add(1);
        e.successes_when_applied += report.outcome.weight();
        if let Some(d) = reward_delta {
            e.reward_delta_sum += d;
            e.reward_delta_count = e.reward_delta_count.saturating_add(1);
        }
    } else {
        e.times_declined = e.times_declined.saturating_add(1);
    }
    Ok(Counted { effectiveness: e, reward_delta })
}
