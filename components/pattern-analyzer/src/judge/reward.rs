//! The reward computed on completion: the seed's published model,
//! `base × efficiency × complexity bonus × quality multiplier`, clamped to
//! [0, 2], with every part explained.

use super::Reward;
use crate::model::{Complexity, Episode, Outcome, OutcomeType, StepStatus};

/// Steps up to this many cost nothing in efficiency.
const FREE_STEPS: f64 = 5.0;
/// Minutes up to this many cost nothing in efficiency.
const FREE_MINUTES: f64 = 5.0;

/// The reward of `episode` completing with `outcome` after `duration_ms`.
pub fn compute(episode: &Episode, outcome: &Outcome, duration_ms: i64) -> Reward {
    let steps = &episode.steps;
    let mut why = Vec::new();
    let base = match outcome.kind {
        OutcomeType::Success => {
            why.push("base 1.00: success".to_string());
            1.0
        }
        OutcomeType::Failure => {
            why.push("base 0.00: failure".to_string());
            0.0
        }
        OutcomeType::PartialSuccess => {
            let done = outcome.completed.len() as f64;
            let total = done + outcome.failed.len() as f64;
            let share = if total > 0.0 { done / total } else { 0.5 };
            why.push(if total > 0.0 {
                format!("base {share:.2}: partial success, {done} of {total} parts completed")
            } else {
                "base 0.50: partial success with no parts listed".to_string()
            });
            share
        }
    };

    let n = steps.len() as f64;
    let step_eff = (1.1 - 0.02 * (n - FREE_STEPS).max(0.0)).clamp(0.6, 1.1);
    let minutes = duration_ms.max(0) as f64 / 60_000.0;
    let time_eff = (1.0 - 0.01 * (minutes - FREE_MINUTES).max(0.0)).clamp(0.7, 1.0);
    let efficiency = (step_eff * time_eff).clamp(0.5, 1.2);
    why.push(format!(
        "efficiency {efficiency:.2}: {n} steps (×{step_eff:.2}), {minutes:.1} min (×{time_eff:.2})"
    ));

    let complexity_bonus = match episode.complexity {
        Complexity::Simple => 1.0,
        Complexity::Moderate => 1.1,
        Complexity::Complex => 1.2,
    };
    why.push(format!("complexity bonus {complexity_bonus:.2}: {}", episode.complexity.name()));

    let mut quality: f64 = 1.0;
    let has = |needle: &str| outcome.artifacts.iter().any(|a| a.to_lowercase().contains(needle));
    if has("test") || has("spec") {
        quality += 0.1;
        why.push("quality +0.10: test artifacts".to_string());
    }
    if has("coverage") {
        quality += 0.1;
        why.push("quality +0.10: coverage artifacts".to_string());
    }
    let errors = steps.iter().filter(|s| s.status != StepStatus::Success).count() as f64;
    if n > 0.0 && errors / n > 0.5 {
        quality -= 0.1;
        why.push(format!("quality -0.10: {errors} of {n} steps failed"));
    }
    let quality_multiplier = quality.clamp(0.8, 1.2);

    let raw = base * efficiency * complexity_bonus * quality_multiplier;
    let total = raw.clamp(0.0, 2.0);
    why.push(format!("total {total:.3} = {base:.2} × {efficiency:.2} × {complexity_bonus:.2} × {quality_multiplier:.2}, clamped to [0, 2]"));
    Reward { total, base, efficiency, complexity_bonus, quality_multiplier, explanation: why }
}
