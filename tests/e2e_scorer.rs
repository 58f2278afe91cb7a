//! Replacing the scorer end to end over MCP stdio: the example
//! `plugins/recency-scorer`, installed in the analyzers directory, ranks in
//! place of the built-in scorer (what matches, newest first), and a scorer
//! that fails (`tests/fixtures/broken-scorer`) is stood in for by the
//! built-in one, with a note saying so, until it is quarantined.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use common::learning::{analysed, health};
use common::{Server, ok, spawn, spawn_in};
use serde_json::{Value, json};

const OLD: [&str; 3] = ["read_spec", "write_handler", "run_tests"];
const NEW: [&str; 2] = ["scaffold_route", "smoke_test"];

async fn episode(s: &Server, desc: &str, tools: &[&str]) {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": "web-api", "task_type": "code_generation"})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    for (i, tool) in tools.iter().enumerate() {
        ok(s, "add_episode_step", json!({"episode_id": id, "step_number": i + 1, "tool": tool, "action": "run", "result": {"type": "success"}, "latency_ms": 10})).await;
    }
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
}

fn tools_of(v: &Value) -> Vec<String> {
    v["tools"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn last_seen(r: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(r["pattern"]["last_seen"].as_str().expect("last_seen")).expect("RFC 3339")
}

fn components_dir() -> PathBuf {
    std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"))
}

/// Installs a component as `memory-mcp analyzer install` does: its files in
/// `PLUGINS_DIR/analyzers/` and a manifest with their checksums.
fn install(dir: &Path, built: &str, name: &str, policy: &str) {
    let wasm = std::fs::read(components_dir().join(built)).unwrap_or_else(|e| panic!("{built}: {e} (build the components first)"));
    let dir = dir.join("analyzers");
    std::fs::create_dir_all(&dir).expect("analyzers dir");
    let sum = |file: String, b: &[u8]| json!({"file": file, "bytes": b.len(), "blake3": blake3::hash(b).to_hex().as_str()});
    let manifest = json!({
        "format": 1,
        "name": name,
        "wasm": sum(format!("{name}.wasm"), &wasm),
        "policy": sum(format!("{name}.policy.toml"), policy.as_bytes()),
        "installed_by": "e2e_scorer",
    });
    std::fs::write(dir.join(format!("{name}.wasm")), &wasm).expect("write wasm");
    std::fs::write(dir.join(format!("{name}.policy.toml")), policy).expect("write policy");
    std::fs::write(dir.join(format!("{name}.analyzer.json")), manifest.to_string()).expect("write manifest");
}

/// Restarts the server on the same data with `plugins` as its plugins
/// directory, once the analyzers (and scorers) are loaded.
async fn restart(s: Server, plugins: &Path) -> Server {
    let data_dir = s.data_dir;
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let dir = plugins.to_str().expect("utf-8").to_string();
    let s = spawn_in(data_dir, &["--plugins-dir", &dir]).await;
    analysed(&s, 0).await;
    s
}

fn recommend_args() -> Value {
    json!({"task_description": "Add a REST endpoint for shipments", "domain": "web-api"})
}

#[tokio::test]
async fn an_installed_scorer_replaces_the_ranking_and_a_failing_one_falls_back_to_the_builtin() {
    // An old, well-supported sequence, then a newer one seen less.
    let s = spawn(&[]).await;
    for i in 0..6 {
        episode(&s, &format!("Add a REST endpoint for orders v{i}"), &OLD).await;
    }
    analysed(&s, 6).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..2 {
        episode(&s, &format!("Add a REST endpoint for refunds v{i}"), &NEW).await;
    }
    analysed(&s, 8).await;
    let builtin = ok(&s, "recommend_patterns", recommend_args()).await;
    let first = &builtin["recommendations"][0];
    assert_eq!(tools_of(&first["pattern"]), OLD, "{builtin}");
    assert_eq!(builtin["weights"]["relevance"], 0.35);
    assert!(builtin.get("scorer_note").is_none(), "{builtin}");
    let h = health(&s).await;
    assert_eq!(h["learning"]["scorers"][0]["analyzer"], "builtin", "{h}");

    // The recency scorer installed: the newest matches come first, and
    // the weights and reasons are its own.
    let plugins = tempfile::tempdir().expect("plugins dir");
    install(plugins.path(), "recency_scorer.wasm", "recency-scorer", include_str!("../plugins/recency-scorer/recency-scorer.policy.toml"));
    let s = restart(s, plugins.path()).await;
    let h = health(&s).await;
    let scorer = &h["learning"]["scorers"][0];
    assert_eq!((scorer["analyzer"].as_str(), scorer["source"]["type"].as_str()), (Some("recency-scorer"), Some("plugin")), "{h}");
    assert!(h["learning"]["analyzers"].as_array().expect("analyzers").iter().all(|a| a["analyzer"] != "recency-scorer"), "a scorer is not an analyzer: {h}");
    let recent = ok(&s, "recommend_patterns", recommend_args()).await;
    assert_eq!(recent["weights"], json!({"recency": 1.0}), "{recent}");
    let recs = recent["recommendations"].as_array().expect("recommendations");
    assert!(!recs.is_empty(), "{recent}");
    assert_ne!(tools_of(&recs[0]["pattern"]), OLD, "the ranking did not change: {recent}");
    assert!(last_seen(&recs[0]) > last_seen(first), "{recent}");
    assert!(recs.windows(2).all(|w| last_seen(&w[0]) >= last_seen(&w[1])), "not newest first: {recent}");
    assert!(recs[0]["reasons"][0].as_str().unwrap_or("").contains("recency scorer"), "{recent}");
    assert!(recent.get("scorer_note").is_none(), "{recent}");

    // A scorer that fails: the built-in one ranks instead and the result
    // says why, each failure in its own words.
    let broken = tempfile::tempdir().expect("plugins dir");
    install(broken.path(), "broken_scorer.wasm", "broken-scorer", "version = 1\n");
    let s = restart(s, broken.path()).await;
    let r = ok(&s, "recommend_patterns", recommend_args()).await;
    assert_eq!(tools_of(&r["recommendations"][0]["pattern"]), OLD, "{r}");
    assert_eq!(r["weights"]["relevance"], 0.35);
    let note = r["scorer_note"].as_str().unwrap_or("");
    assert!(note.contains("broken-scorer") && note.contains("trapped") && note.contains("built-in scorer"), "{r}");
    let a = ok(&s, "analyze_patterns", json!({"task_type": "code_generation"})).await;
    // Ordered by the built-in scorer: 6 of 6 before 2 of 2.
    let at = |tools: &[&str]| a["patterns"].as_array().expect("patterns").iter().position(|p| tools_of(p) == tools);
    assert!(at(&OLD).expect("old sequence") < at(&NEW).expect("new sequence"), "{a}");
    assert!(a["scorer_note"].as_str().unwrap_or("").contains("refuses to order"), "{a}");
    // query_memory once it ranks with embeddings (the local embedder).
    let started = Instant::now();
    let q = loop {
        let q = ok(&s, "query_memory", json!({"query": "REST endpoint refunds", "limit": 3})).await;
        if q["ranking"] == "hybrid" {
            break q;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "query_memory never ranked with embeddings: {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(q["scorer_note"].as_str().unwrap_or("").contains("past the"), "{q}");
    assert!(q["results"][0]["task_description"].as_str().unwrap_or("").contains("refunds"), "{q}");

    // Five failures in a row quarantine it; the tools keep working.
    for _ in 0..2 {
        ok(&s, "search_patterns", json!({"query": "REST endpoint", "domain": "web-api"})).await;
    }
    let r = ok(&s, "recommend_patterns", recommend_args()).await;
    assert!(r["scorer_note"].as_str().unwrap_or("").contains("quarantined"), "{r}");
    assert_eq!(tools_of(&r["recommendations"][0]["pattern"]), OLD, "{r}");
    let h = health(&s).await;
    let scorer = &h["learning"]["scorers"][0];
    assert_eq!((scorer["status"].as_str(), scorer["batches_failed"].as_u64()), (Some("quarantined"), Some(5)), "{h}");
    assert_eq!(h["learning"]["scorers"][1]["status"], "ok", "{h}");
}
