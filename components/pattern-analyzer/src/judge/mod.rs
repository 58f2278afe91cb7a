//! One episode's analysis on completion: its [`reward`] and its
//! [`reflection`], both deterministic, from its steps and outcome.

pub mod reflection;
pub mod reward;

use crate::model::{Episode, Outcome};

/// The reward and its parts: `total = clamp(base × efficiency ×
/// complexity_bonus × quality_multiplier, 0, 2)`, with why each part has
/// its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reward {
    /// 0..2.
    pub total: f64,
    /// 1 for success, 0 for failure, the completed share for a partial one.
    pub base: f64,
    /// 0.5..1.2, from the step count and the duration.
    pub efficiency: f64,
    /// 1.0, 1.1 or 1.2 by complexity.
    pub complexity_bonus: f64,
    /// 0.8..1.2, from the artifacts and the error rate.
    pub quality_multiplier: f64,
    /// Why each part has its value, one line each, then the total.
    pub explanation: Vec<String>,
}

/// What went well, what to improve, and what the run says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reflection {
    /// What went well: recoveries and success.
    pub successes: Vec<String>,
    /// What to improve: unrecovered failures, timeouts, slow and repeated steps.
    pub improvements: Vec<String>,
    /// What the run says: its tool sequence, most used tool, error rate.
    pub insights: Vec<String>,
}

/// The reward and reflection of `episode`, completing with `outcome` after
/// `duration_ms`.
pub fn judge(episode: &Episode, outcome: &Outcome, duration_ms: i64) -> (Reward, Reflection) {
    (reward::compute(episode, outcome, duration_ms), reflection::derive(&episode.steps, outcome))
}

#[cfg(test)]
mod tests;
