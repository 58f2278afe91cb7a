use super::*;
use crate::model::*;

fn step(tool: &str, action: &str, status: StepStatus, message: Option<&str>) -> Step {
    Step {
        number: 1,
        tool: tool.into(),
        action: action.into(),
        parameters_json: "{}".into(),
        status,
        message: message.map(Into::into),
        latency_ms: 10,
    }
}

fn episode(id: &str, tools: &[&str], outcome: OutcomeType) -> Episode {
    Episode {
        id: id.into(),
        task_description: "build an endpoint".into(),
        domain: "web-api".into(),
        task_type: TaskType::CodeGeneration,
        language: Some("Rust".into()),
        framework: None,
        complexity: Complexity::Moderate,
        tags: vec!["rest".into()],
        steps: tools.iter().map(|t| step(t, "do it", StepStatus::Success, None)).collect(),
        outcome: Some(outcome),
        reward: Some(1.0),
    }
}

#[test]
fn same_sequence_folds_into_one_pattern_with_its_success_rate() {
    let eps = vec![
        episode("a", &["read", "write", "write", "test"], OutcomeType::Success),
        episode("b", &["read", "write", "test"], OutcomeType::Success),
        episode("c", &["read", "write", "test"], OutcomeType::Failure),
        episode("d", &["write", "test"], OutcomeType::Failure),
    ];
    let a = extract(&eps);
    let seqs: Vec<_> = a.patterns.iter().filter(|p| p.kind == PatternKind::ToolSequence).collect();
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[0].tools, ["read", "write", "test"]);
    assert_eq!(seqs[0].evidence.sample_size, 3);
    assert!((seqs[0].evidence.success_rate - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(seqs[0].evidence.episode_ids, ["a", "b", "c"]);
    // Keys depend only on what was seen, so another batch merges with this.
    assert_eq!(extract(&eps[1..2]).patterns[0].key, seqs[0].key);
}

#[test]
fn recovery_is_keyed_by_error_kind_and_fix() {
    let mut e = episode("r", &[], OutcomeType::Success);
    e.steps = vec![
        step("cargo", "build", StepStatus::Error, Some("error[E0308]: mismatched types")),
        step("editor", "fix the signature", StepStatus::Success, None),
        step("cargo", "build", StepStatus::Success, None),
    ];
    let a = extract(&[e]);
    let r = a.patterns.iter().find(|p| p.kind == PatternKind::ErrorRecovery).expect("recovery");
    assert_eq!(r.tools, ["cargo", "editor"]);
    assert!(r.key.contains("|type|"), "{}", r.key);
    assert!(a.heuristics.iter().any(|h| h.condition == "cargo fails with a type error"));
}

#[test]
fn decisions_are_read_from_action_text_and_parameters() {
    let mut e = episode("d", &[], OutcomeType::Success);
    e.steps = vec![
        step("cache", "If the cache is cold, warm it first", StepStatus::Success, None),
        step("db", "run migrations because schema changed 3 times", StepStatus::Success, None),
        Step { parameters_json: r#"{"condition":"tests flaky","decision":"rerun once"}"#.into(), ..step("ci", "x", StepStatus::Success, None) },
    ];
    let a = extract(&[e]);
    let d: Vec<_> = a.patterns.iter().filter(|p| p.kind == PatternKind::DecisionPoint).collect();
    let pairs: Vec<_> = d.iter().map(|p| (p.condition.clone().unwrap_or_default(), p.action.clone().unwrap_or_default())).collect();
    assert_eq!(
        pairs,
        [
            ("the cache is cold".to_string(), "warm it first".to_string()),
            ("schema changed # times".to_string(), "run migrations".to_string()),
            ("tests flaky".to_string(), "rerun once".to_string()),
        ]
    );
}

#[test]
fn context_features_track_success() {
    let a = extract(&[episode("x", &["a", "b"], OutcomeType::Success), episode("y", &["a", "b"], OutcomeType::Failure)]);
    let lang = a.patterns.iter().find(|p| p.key.ends_with("language=rust")).expect("language");
    assert_eq!(lang.evidence.sample_size, 2);
    assert_eq!(lang.evidence.success_rate, 0.5);
}

#[test]
fn episodes_without_outcome_teach_nothing() {
    let mut e = episode("z", &["a", "b"], OutcomeType::Success);
    e.outcome = None;
    assert_eq!(extract(&[e]), Analysis::default());
}
