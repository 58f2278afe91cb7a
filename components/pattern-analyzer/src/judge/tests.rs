use super::*;
use crate::model::{Complexity, OutcomeType, Step, StepStatus, TaskType};

fn step(n: u32, tool: &str, action: &str, status: StepStatus, latency_ms: u64) -> Step {
    Step {
        number: n,
        tool: tool.into(),
        action: action.into(),
        parameters_json: "{}".into(),
        status,
        message: Some("boom".into()),
        latency_ms,
    }
}

fn ok_steps(n: u32) -> Vec<Step> {
    (1..=n).map(|i| step(i, "t", "a", StepStatus::Success, 1)).collect()
}

fn episode(c: Complexity, steps: Vec<Step>) -> Episode {
    Episode {
        id: "e".into(),
        task_description: "t".into(),
        domain: "d".into(),
        task_type: TaskType::Testing,
        language: None,
        framework: None,
        complexity: c,
        tags: vec![],
        steps,
        outcome: None,
        reward: None,
    }
}

fn outcome(kind: OutcomeType, completed: usize, failed: usize, artifacts: &[&str]) -> Outcome {
    Outcome {
        kind,
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
    let e = episode(Complexity::Simple, ok_steps(3));
    let r = reward::compute(&e, &outcome(OutcomeType::Success, 0, 0, &[]), 1000);
    assert_eq!(r.base, 1.0);
    assert!((r.total - 1.1).abs() < 1e-9, "{r:?}");
    assert_eq!(reward::compute(&e, &outcome(OutcomeType::Failure, 0, 0, &[]), 1000).total, 0.0);
    assert_eq!(reward::compute(&e, &outcome(OutcomeType::PartialSuccess, 3, 1, &[]), 1000).base, 0.75);
    assert_eq!(reward::compute(&e, &outcome(OutcomeType::PartialSuccess, 0, 0, &[]), 1000).base, 0.5);
}

#[test]
fn efficiency_complexity_and_quality_move_the_total() {
    let o = outcome(OutcomeType::Success, 0, 0, &[]);
    let short = episode(Complexity::Moderate, ok_steps(3));
    let long = episode(Complexity::Moderate, ok_steps(40));
    assert!(reward::compute(&short, &o, 1000).total > reward::compute(&long, &o, 1000).total);
    assert!(reward::compute(&short, &o, 1000).total > reward::compute(&short, &o, 3_600_000).total);
    let complex = reward::compute(&episode(Complexity::Complex, ok_steps(3)), &o, 1000);
    assert!(complex.total > reward::compute(&short, &o, 1000).total);
    let tested = reward::compute(&short, &outcome(OutcomeType::Success, 0, 0, &["tests/api_test.rs", "coverage.xml"]), 1000);
    assert!((tested.quality_multiplier - 1.2).abs() < 1e-9);
    assert!(tested.explanation.iter().any(|e| e.contains("test artifacts")));
    let failing: Vec<Step> = (1..=4).map(|i| step(i, "t", "a", if i == 4 { StepStatus::Success } else { StepStatus::Error }, 1)).collect();
    assert!(reward::compute(&episode(Complexity::Moderate, failing), &o, 1000).quality_multiplier < 1.0);
    assert_eq!(short.complexity.name(), "moderate");
    assert!(reward::compute(&short, &o, 1000).explanation.contains(&"complexity bonus 1.10: moderate".to_string()));
}

#[test]
fn reflection_finds_recoveries_slow_steps_and_repeats() {
    let steps = vec![
        step(1, "cargo", "build", StepStatus::Error, 100),
        step(2, "editor", "fix import", StepStatus::Success, 100),
        step(3, "cargo", "test", StepStatus::Success, 9000),
        step(4, "grep", "search", StepStatus::Success, 100),
        step(5, "grep", "search", StepStatus::Success, 100),
        step(6, "grep", "search", StepStatus::Success, 100),
    ];
    let o = Outcome { verdict: "done".into(), ..outcome(OutcomeType::Success, 0, 0, &[]) };
    let r = reflection::derive(&steps, &o);
    assert!(r.successes.iter().any(|s| s.contains("Recovered from cargo failure in step 1") && s.contains("editor")), "{r:?}");
    assert!(r.improvements.iter().any(|s| s.contains("Step 3 (cargo) took 9000 ms")), "{r:?}");
    assert!(r.improvements.iter().any(|s| s.contains("Repeated grep") && s.contains("3 times")), "{r:?}");
    assert!(r.insights.contains(&"Tool sequence: cargo → editor → cargo → grep".to_string()), "{r:?}");
    assert!(r.successes.contains(&"Succeeded in 6 steps: done".to_string()), "{r:?}");
    assert_eq!(reflection::derive(&steps, &o), r, "deterministic");
}

#[test]
fn reflection_and_patterns_share_the_recovery_definition() {
    // cargo fails, then three failing npm steps: the editor's fix (step 5)
    // is out of cargo's reach, within npm's.
    let mut steps = vec![step(1, "cargo", "build", StepStatus::Error, 10)];
    steps.extend((2..=4).map(|i| step(i, "npm", "install", StepStatus::Error, 10)));
    steps.push(step(5, "editor", "pin the version", StepStatus::Success, 10));
    let r = reflection::derive(&steps, &outcome(OutcomeType::Success, 0, 0, &[]));
    let recovered: Vec<&String> = r.successes.iter().filter(|s| s.starts_with("Recovered")).collect();
    assert_eq!(recovered.len(), 1, "{r:?}");
    assert!(recovered[0].starts_with("Recovered from npm failure in step 2"), "{r:?}");
    assert!(r.improvements.contains(&"Step 1 (cargo) failed and was never recovered: boom".to_string()), "{r:?}");
    assert!(!r.improvements.iter().any(|s| s.contains("Step 3") || s.contains("Step 4")), "{r:?}");

    let mut e = episode(Complexity::Simple, steps);
    e.outcome = Some(OutcomeType::Success);
    let learned = crate::extract::extract(&[e]);
    let tools: Vec<&Vec<String>> =
        learned.patterns.iter().filter(|p| p.kind == crate::model::PatternKind::ErrorRecovery).map(|p| &p.tools).collect();
    assert_eq!(tools, [&vec!["npm".to_string(), "editor".to_string()]]);
}

#[test]
fn timeouts_and_failures_are_improvements() {
    let steps = vec![step(1, "curl", "fetch", StepStatus::Timeout, 10), step(2, "curl", "fetch", StepStatus::Error, 10)];
    let o = Outcome { reason: Some("gave up".into()), ..outcome(OutcomeType::Failure, 0, 0, &[]) };
    let r = reflection::derive(&steps, &o);
    assert_eq!(
        r.improvements,
        [
            "Step 1 (curl) failed and was never recovered: boom",
            "Step 1 (curl) timed out; consider a smaller unit of work or a longer limit",
            "Step 2 (curl) failed and was never recovered: boom",
            "Failed: gave up",
        ]
    );
    assert!(r.insights.contains(&"Error rate: 2 of 2 steps (100%)".to_string()), "{r:?}");
}
