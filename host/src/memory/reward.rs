//! The reward computed on completion: the seed's published model,
//! `base × efficiency × complexity bonus × quality multiplier`, clamped to
//! [0, 2], with every part explained.

use super::model::{Complexity, EpisodeHeader, Outcome, OutcomeType, Reward, Step, StepStatus};

/// Steps up to this many cost nothing in efficiency.
const FREE_STEPS: f64 = 5.0;
/// Minutes up to this many cost nothing in efficiency.
const FREE_MINUTES: f64 = 5.0;

pub fn compute(header: &EpisodeHeader, steps: &[Step], outcome: &Outcome, duration_ms: i64) -> Reward {
    let mut why = Vec::new();
    let base = match outcome.outcome_type {
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

    let complexity_bonus = match header.context.complexity {
        Complexity::Simple => 1.0,
        Complexity::Moderate => 1.1,
        Complexity::Complex => 1.2,
    };
    why.push(format!("complexity bonus {complexity_bonus:.2}: {:?}", header.context.complexity).to_lowercase());

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
    let errors = steps.iter().filter(|s| s.result.status != StepStatus::Success).count() as f64;
    if n > 0.0 && errors / n > 0.5 {
        quality -= 0.1;
        why.push(format!("quality -0.10: {errors} of {n} steps failed"));
    }
    let quality_multiplier = quality.clamp(0.8, 1.2);

    let raw = base * efficiency * complexity_bonus * quality_multiplier;
    let total = raw.clamp(0.0, 2.0);
    why.push(format!("total {total:.3} = {base:.2} × {efficiency:.2} × {complexity_bonus:.2} × {quality_multiplier:.2}, clamped to [0, 2]"));
    Reward {
        total,
        base,
        efficiency,
        complexity_bonus,
        quality_multiplier,
        explanation: why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::model::{StepResult, TaskContext, TaskType};
    use chrono::Utc;

    fn header(c: Complexity) -> EpisodeHeader {
        EpisodeHeader {
            episode_id: uuid::Uuid::now_v7(),
            task_description: "t".into(),
            domain: "d".into(),
            task_type: TaskType::Testing,
            context: TaskContext { complexity: c, ..Default::default() },
            started_at: Utc::now(),
            completed_at: None,
            outcome: None,
            reward: None,
            reflection: None,
            metadata: Default::default(),
            step_count: 0,
        }
    }

    fn step(n: u32, ok: bool) -> Step {
        Step {
            step_number: n,
            timestamp: Utc::now(),
            tool: "t".into(),
            action: "a".into(),
            parameters: Default::default(),
            result: StepResult {
                status: if ok { StepStatus::Success } else { StepStatus::Error },
                output: None,
                message: None,
            },
            latency_ms: 1,
            tokens_used: None,
        }
    }

    fn outcome(t: OutcomeType, completed: usize, failed: usize, artifacts: &[&str]) -> Outcome {
        Outcome {
            outcome_type: t,
            verdict: String::new(),
            artifacts: artifacts.iter().map(|s| s.to_string()).collect(),
            completed: (0..completed).map(|i| i.to_string()).collect(),
            failed: (0..failed).map(|i| i.to_string()).collect(),
            reason: None,
            error_details: None,
        }
    }

    #[test]
    fn success_failure_and_partial() {
        let h = header(Complexity::Simple);
        let steps: Vec<_> = (1..=3).map(|i| step(i, true)).collect();
        let r = compute(&h, &steps, &outcome(OutcomeType::Success, 0, 0, &[]), 1000);
        assert_eq!(r.base, 1.0);
        assert!((r.total - 1.1).abs() < 1e-9, "{r:?}");
        let r = compute(&h, &steps, &outcome(OutcomeType::Failure, 0, 0, &[]), 1000);
        assert_eq!(r.total, 0.0);
        let r = compute(&h, &steps, &outcome(OutcomeType::PartialSuccess, 3, 1, &[]), 1000);
        assert_eq!(r.base, 0.75);
    }

    #[test]
    fn efficiency_complexity_and_quality_move_the_total() {
        let short: Vec<_> = (1..=3).map(|i| step(i, true)).collect();
        let long: Vec<_> = (1..=40).map(|i| step(i, true)).collect();
        let h = header(Complexity::Moderate);
        let o = outcome(OutcomeType::Success, 0, 0, &[]);
        assert!(compute(&h, &short, &o, 1000).total > compute(&h, &long, &o, 1000).total);
        assert!(compute(&h, &short, &o, 1000).total > compute(&h, &short, &o, 3_600_000).total);
        let complex = compute(&header(Complexity::Complex), &short, &o, 1000);
        assert!(complex.total > compute(&h, &short, &o, 1000).total);
        let tested = compute(&h, &short, &outcome(OutcomeType::Success, 0, 0, &["tests/api_test.rs", "coverage.xml"]), 1000);
        assert!((tested.quality_multiplier - 1.2).abs() < 1e-9);
        let failing: Vec<_> = (1..=4).map(|i| step(i, i == 4)).collect();
        assert!(compute(&h, &failing, &o, 1000).quality_multiplier < 1.0);
        assert!(tested.explanation.iter().any(|e| e.contains("test artifacts")));
    }
}
