//! The episode analysis component over MCP stdio: one error → recovery
//! definition (a failing step fixed within 3 steps) in both the reflection
//! `complete_episode` returns and the `error_recovery` patterns learned
//! from the same episode.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use common::learning::analysed;
use common::{ok, spawn};
use serde_json::{Value, json};

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[tokio::test]
async fn reflection_and_patterns_agree_on_what_was_recovered() {
    let s = spawn(&[]).await;
    let r = ok(&s, "create_episode", json!({"task_description": "Upgrade the HTTP client", "domain": "deps", "task_type": "refactoring"})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    // cargo fails; then npm fails three times and the editor fixes it: the
    // fix is 4 steps after cargo's failure (out of reach), 3 after npm's.
    let steps = [("cargo", "build", "error"), ("npm", "install", "error"), ("npm", "install", "error"), ("npm", "install", "error"), ("editor", "pin the version", "success")];
    for (i, (tool, action, status)) in steps.iter().enumerate() {
        ok(&s, "add_episode_step", json!({"episode_id": id, "step_number": i + 1, "tool": tool, "action": action, "result": {"type": status, "message": "it broke"}, "latency_ms": 10})).await;
    }
    let done = ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "pinned"}})).await;
    let successes = strings(&done["reflection"]["successes"]);
    let improvements = strings(&done["reflection"]["improvements"]);
    let recovered: Vec<&String> = successes.iter().filter(|s| s.starts_with("Recovered from")).collect();
    assert_eq!(recovered.len(), 1, "{done}");
    assert!(recovered[0].starts_with("Recovered from npm failure in step 2") && recovered[0].contains("with editor"), "{done}");
    assert!(improvements.contains(&"Step 1 (cargo) failed and was never recovered: it broke".to_string()), "{done}");
    assert!(done["reward"]["total"].as_f64().expect("total") > 0.0, "{done}");

    analysed(&s, 1).await;
    let a = ok(&s, "analyze_patterns", json!({"task_type": "refactoring", "min_success_rate": 0.0, "limit": 100})).await;
    let learned: Vec<Vec<String>> = a["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .filter(|p| p["kind"] == "error_recovery")
        .map(|p| strings(&p["tools"]))
        .collect();
    assert_eq!(learned, [vec!["npm".to_string(), "editor".to_string()]], "{a}");
}
