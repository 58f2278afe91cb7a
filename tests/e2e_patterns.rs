//! Learning end to end over MCP stdio: patterns found in seeded episodes,
//! recommendations ranked by what worked, feedback moving the ranking,
//! restart, time-series analysis against planted answers, and third-party
//! analyzers, hostile ones included.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::{Path, PathBuf};

use common::learning::{analysed, health};
use common::{Server, err, ok, spawn, spawn_in};
use serde_json::{Value, json};

/// Records a completed episode with one step per tool.
async fn episode(s: &Server, desc: &str, domain: &str, tools: &[&str], outcome: &str, latency_ms: u64) -> String {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": domain, "task_type": "code_generation", "context": {"language": "rust", "tags": ["rest"]}})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    for (i, tool) in tools.iter().enumerate() {
        ok(s, "add_episode_step", json!({"episode_id": id, "step_number": i + 1, "tool": tool, "action": "run", "result": {"type": "success"}, "latency_ms": latency_ms})).await;
    }
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": outcome, "verdict": "done"}})).await;
    id
}

const WINNING: [&str; 4] = ["read_spec", "write_handler", "write_tests", "run_tests"];
const ALSO_GOOD: [&str; 3] = ["scaffold", "write_handler", "run_tests"];
const LOSING: [&str; 2] = ["write_handler", "deploy"];

fn tools_of(v: &Value) -> Vec<String> {
    v["tools"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[tokio::test]
async fn learns_what_worked_recommends_it_and_feedback_moves_the_ranking() {
    let s = spawn(&[]).await;
    let resources = ["users", "orders", "invoices", "carts", "payments", "refunds", "reviews", "coupons"];
    let mut low_reward_episode = String::new();
    for r in resources {
        episode(&s, &format!("Add a REST endpoint for {r}"), "web-api", &WINNING, "success", 10).await;
        low_reward_episode = episode(&s, &format!("Add a REST endpoint for {r} quickly"), "web-api", &LOSING, "failure", 10).await;
    }
    for r in &resources[..6] {
        episode(&s, &format!("Add a REST endpoint for {r} v2"), "web-api", &ALSO_GOOD, "success", 10).await;
    }
    analysed(&s, 22).await;

    // analyze_patterns finds the winning sequence with its evidence, and
    // not the losing one.
    let a = ok(&s, "analyze_patterns", json!({"task_type": "code_generation"})).await;
    let seqs: Vec<&Value> = a["patterns"].as_array().expect("patterns").iter().filter(|p| p["kind"] == "tool_sequence").collect();
    let win = seqs.iter().find(|p| tools_of(p) == WINNING).unwrap_or_else(|| panic!("winning sequence not found: {a}"));
    assert_eq!(win["evidence"]["sample_size"], 8);
    assert_eq!(win["evidence"]["success_rate"], 1.0);
    assert_eq!(win["evidence"]["episode_ids"].as_array().expect("ids").len(), 8);
    assert_eq!(win["provenance"]["analyzer"], "builtin");
    assert!(seqs.iter().all(|p| tools_of(p) != LOSING), "a failing sequence passed min_success_rate");
    assert!(a["heuristics"].as_array().expect("heuristics").iter().any(|h| h["action"].as_str().unwrap_or("").contains("read_spec → write_handler")));
    let lowered = ok(&s, "analyze_patterns", json!({"task_type": "code_generation", "min_success_rate": 0.0, "limit": 100})).await;
    assert!(lowered["patterns"].as_array().expect("p").iter().any(|p| tools_of(p) == LOSING && p["evidence"]["success_rate"] == 0.0));

    // recommend_patterns ranks it first for a new task of the family, and
    // says why.
    let rec = ok(&s, "recommend_patterns", json!({"task_description": "Add a REST endpoint for shipments", "domain": "web-api", "tags": ["rest"]})).await;
    let first = &rec["recommendations"][0];
    assert_eq!(tools_of(&first["pattern"]), WINNING, "{rec}");
    assert!(first["reasons"].as_array().expect("reasons").len() >= 2);
    assert_eq!(tools_of(&rec["recommendations"][1]["pattern"]), ALSO_GOOD, "{rec}");
    let win_id = first["pattern"]["pattern_id"].as_str().expect("id").to_string();

    // Failure reports on the winner move it below the other good sequence.
    for _ in 0..3 {
        let f = ok(&s, "record_pattern_feedback", json!({"pattern_id": win_id, "applied": true, "outcome": "failure", "episode_id": low_reward_episode})).await;
        assert!(f["reward_delta"].as_f64().expect("delta") < 0.0, "{f}");
    }
    let rec2 = ok(&s, "recommend_patterns", json!({"task_description": "Add a REST endpoint for shipments", "domain": "web-api", "tags": ["rest"]})).await;
    assert_eq!(tools_of(&rec2["recommendations"][0]["pattern"]), ALSO_GOOD, "{rec2}");
    let moved = rec2["recommendations"].as_array().expect("recs").iter().find(|r| r["pattern"]["pattern_id"] == win_id.as_str()).expect("still listed");
    assert!(moved["score"].as_f64() < first["score"].as_f64());
    assert_eq!(moved["pattern"]["effectiveness"]["times_applied"], 3);

    // Bad input is an isError result.
    assert!(err(&s, "record_pattern_feedback", json!({"pattern_id": "nope", "applied": true, "outcome": "success"})).await.contains("not a pattern id"));
    assert!(err(&s, "record_pattern_feedback", json!({"pattern_id": uuid_like(), "applied": true, "outcome": "success"})).await.contains("not found"));
    assert!(err(&s, "analyze_patterns", json!({"task_type": "code_generation", "min_success_rate": 3})).await.contains("between 0 and 1"));
    assert!(err(&s, "recommend_patterns", json!({"task_description": "x", "domain": "d", "limit": 0})).await.contains("limit"));
    assert!(err(&s, "search_patterns", json!({"domain": "web-api"})).await.contains("query"));

    // Series from stored episodes.
    let st = ok(&s, "advanced_pattern_analysis", json!({"analysis_type": "statistical", "config": {"domain": "web-api", "metrics": ["success_rate", "step_count"], "bucket_size": 1}})).await;
    assert_eq!(st["series"][0]["name"], "success_rate");
    assert_eq!(st["series"][0]["descriptive"]["count"], 22);

    // Restart keeps patterns, ids and effectiveness.
    let data_dir = s.data_dir;
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let s = spawn_in(data_dir, &[]).await;
    let again = ok(&s, "recommend_patterns", json!({"task_description": "Add a REST endpoint for shipments", "domain": "web-api"})).await;
    let kept = again["recommendations"].as_array().expect("recs").iter().find(|r| r["pattern"]["pattern_id"] == win_id.as_str()).expect("kept");
    assert_eq!(kept["pattern"]["evidence"]["sample_size"], 8);
    assert_eq!(kept["pattern"]["effectiveness"]["times_applied"], 3);
    // Nothing was queued twice: the counts did not grow on restart.
    let h = analysed(&s, 0).await;
    assert_eq!(h["learning"]["worker"]["episodes_analyzed"], 0);
}

fn uuid_like() -> String {
    "0190f3a0-0000-7000-8000-000000000000".into()
}

/// Deterministic noise in [-1, 1].
fn noise(i: usize) -> f64 {
    let x = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((x >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
}

#[tokio::test]
async fn statistics_find_planted_change_points_and_anomalies() {
    let s = spawn(&[]).await;
    let mut shifted: Vec<f64> = (0..100).map(|i| if i < 60 { 0.3 } else { 0.8 } + 0.05 * noise(i)).collect();
    shifted[20] = 1.5;
    let rising: Vec<f64> = (0..100).map(|i| 0.5 * i as f64 + noise(i + 7)).collect();
    let r = ok(&s, "advanced_pattern_analysis", json!({"analysis_type": "comprehensive", "time_series_data": {"reward": shifted, "latency": rising}, "config": {"horizon": 4}})).await;
    let latency = &r["series"][0];
    let reward = &r["series"][1];
    assert_eq!(reward["name"], "reward");
    let cps = reward["change_points"].as_array().expect("cps");
    assert_eq!(cps.len(), 1, "{reward}");
    assert_eq!(cps[0]["index"], 60);
    let anomalies = reward["anomalies"].as_array().expect("anomalies");
    assert_eq!(anomalies.len(), 1, "{reward}");
    assert_eq!(anomalies[0]["index"], 20);
    assert_eq!(latency["trend"]["significant"], true);
    assert!((latency["trend"]["slope"].as_f64().expect("slope") - 0.5).abs() < 0.01);
    let f = latency["forecast"].as_array().expect("forecast");
    assert_eq!(f.len(), 4);
    assert!(f[0]["lower"].as_f64() < f[0]["value"].as_f64() && f[0]["value"].as_f64() < f[0]["upper"].as_f64());
    // The forecast of the shifted series starts from its latest level.
    let rf = reward["forecast"][0]["value"].as_f64().expect("value");
    assert!((rf - 0.8).abs() < 0.1, "{rf}");
    assert_eq!(r["correlations"].as_array().expect("correlations").len(), 1);

    let p = ok(&s, "advanced_pattern_analysis", json!({"analysis_type": "predictive", "time_series_data": {"x": [1.0, 2.0, 3.0, 4.0]}})).await;
    assert!(p["series"][0]["descriptive"].is_null() && p["series"][0]["forecast"].as_array().expect("f").len() == 5);

    assert!(err(&s, "advanced_pattern_analysis", json!({"analysis_type": "guess"})).await.contains("invalid arguments"));
    assert!(err(&s, "advanced_pattern_analysis", json!({"analysis_type": "statistical", "time_series_data": {"x": [1.0]}, "config": {"confidence": 2.0}})).await.contains("confidence"));
    assert!(err(&s, "advanced_pattern_analysis", json!({"analysis_type": "statistical"})).await.contains("no completed episodes"));
    assert!(err(&s, "advanced_pattern_analysis", json!({"analysis_type": "statistical", "config": {"metrics": ["mood"]}})).await.contains("unknown metric"));
}

fn components_dir() -> PathBuf {
    std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"))
}

/// Installs an analyzer as `memory-mcp analyzer install` does: its files
/// in `PLUGINS_DIR/analyzers/` and a manifest with their checksums (written
/// here, so that a bad policy or a broken component gets as far as the
/// server's checks).
fn install(dir: &Path, built: &str, name: &str, policy: Option<&str>) -> Vec<u8> {
    let bytes = std::fs::read(components_dir().join(built)).unwrap_or_else(|e| panic!("{built}: {e} (build the components first)"));
    write_analyzer(dir, name, &bytes, policy.unwrap_or("version = 1\n"));
    bytes
}

fn write_analyzer(dir: &Path, name: &str, wasm: &[u8], policy: &str) {
    let dir = dir.join("analyzers");
    std::fs::create_dir_all(&dir).expect("analyzers dir");
    let sum = |file: String, b: &[u8]| json!({"file": file, "bytes": b.len(), "blake3": blake3::hash(b).to_hex().as_str()});
    let manifest = json!({
        "format": 1,
        "name": name,
        "wasm": sum(format!("{name}.wasm"), wasm),
        "policy": sum(format!("{name}.policy.toml"), policy.as_bytes()),
        "installed_by": "e2e_patterns",
    });
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).expect("write plugin");
    std::fs::write(dir.join(format!("{name}.policy.toml")), policy).expect("write policy");
    std::fs::write(dir.join(format!("{name}.analyzer.json")), manifest.to_string()).expect("write manifest");
}

fn analyzer<'a>(h: &'a Value, name: &str) -> &'a Value {
    h["learning"]["analyzers"].as_array().expect("analyzers").iter().find(|a| a["analyzer"] == name).unwrap_or_else(|| panic!("no analyzer {name}: {h}"))
}

#[tokio::test]
async fn third_party_analyzers_load_with_provenance_and_hostile_ones_are_contained() {
    let plugins = tempfile::tempdir().expect("plugins dir");
    let slow = install(plugins.path(), "slow_steps.wasm", "slow-steps", Some(include_str!("../plugins/slow-steps/slow-steps.policy.toml")));
    install(
        plugins.path(),
        "hostile_analyzer.wasm",
        "hostile",
        Some("version = 1\n[limits]\nfuel = 200_000_000\nmemory_mb = 32\ntimeout_ms = 3_000\nmax_patterns = 100\n"),
    );
    install(plugins.path(), "slow_steps.wasm", "badpolicy", Some("version = 1\n[grants]\nnetwork = true\n"));
    write_analyzer(plugins.path(), "broken", b"\0asm garbage", "version = 1\n");
    let dir = plugins.path().to_str().expect("utf-8").to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;

    let h = analysed(&s, 0).await;
    let rejected = h["learning"]["rejected_plugins"].to_string();
    assert!(rejected.contains("broken.wasm") && rejected.contains("badpolicy.policy.toml") && rejected.contains("unknown field"), "{rejected}");
    let ss = analyzer(&h, "slow-steps");
    assert_eq!(ss["component_blake3"], blake3::hash(&slow).to_hex().as_str());
    assert_eq!(ss["grants_store"], false);
    assert_eq!(ss["source"]["type"], "plugin");

    // A slow step is flagged by the plugin, with provenance; the built-in
    // analyzer learns from the same batch.
    let mut done = 0;
    let mut tools = vec!["checkout", "deploy"];
    episode(&s, "Ship the release", "ops", &tools, "success", 9_000).await;
    done += 1;
    analysed(&s, done).await;
    let found = ok(&s, "search_patterns", json!({"query": "deploy slow", "domain": "ops", "min_relevance": 0.0, "limit": 10})).await;
    let flagged = found["results"].as_array().expect("results").iter().find(|r| r["pattern"]["provenance"]["analyzer"] == "slow-steps").unwrap_or_else(|| panic!("no slow-steps pattern: {found}"));
    assert_eq!(flagged["pattern"]["label"], "slow_step");
    assert_eq!(flagged["pattern"]["provenance"]["component_blake3"], blake3::hash(&slow).to_hex().as_str());
    assert_eq!(flagged["pattern"]["data"]["max_ms"], 9000);
    let h = health(&s).await;
    assert_eq!(analyzer(&h, "hostile")["batches_ok"], 1);

    // Each hostile behaviour is contained: the batch's hostile output is
    // dropped and reported, the built-in analyzer still learns, and the
    // server keeps serving.
    let cases = [
        ("store", "capability `memory-mcp:memory/store@0.1.0#count-episodes` is not granted"),
        ("trap", "trapped"),
        ("loop", "fuel"),
        ("alloc", "memory limit"),
        ("huge", "too large"),
        ("malformed", "malformed output"),
    ];
    for (i, (behaviour, expect)) in cases.iter().enumerate() {
        let unique = format!("probe-{behaviour}");
        tools = vec!["probe", unique.as_str()];
        episode(&s, &format!("hostile:{behaviour} task"), "ops", &tools, "success", 10).await;
        done += 1;
        let h = analysed(&s, done).await;
        let hostile = analyzer(&h, "hostile");
        if i < 5 {
            assert_eq!(hostile["batches_failed"], i as u64 + 1, "{hostile}");
            let last = hostile["last_error"].as_str().unwrap_or("");
            assert!(last.contains(expect), "{behaviour}: {last}");
        } else {
            // Quarantined after five failures in a row: not called again.
            assert_eq!((hostile["status"].as_str(), hostile["batches_failed"].as_u64()), (Some("quarantined"), Some(5)), "{hostile}");
        }
        let b = analyzer(&h, "builtin");
        assert_eq!((b["status"].as_str(), b["batches_failed"].as_u64()), (Some("ok"), Some(0)), "{b}");
        let a = ok(&s, "analyze_patterns", json!({"task_type": "code_generation", "limit": 100, "domain": "ops"})).await;
        assert!(a["patterns"].as_array().expect("p").iter().any(|p| tools_of(p) == ["probe", unique.as_str()]), "{behaviour}: built-in pattern missing");
        assert!(!a["patterns"].to_string().contains("huge-"), "hostile output was stored");
        let r = s.exec("return 6 * 7").await;
        assert_eq!(r["output"], 42);
    }
    let h = health(&s).await;
    assert_eq!(analyzer(&h, "hostile")["status"], "quarantined");
    assert_eq!(analyzer(&h, "slow-steps")["status"], "ok");
}

#[tokio::test]
async fn an_analyzer_granted_the_store_reads_it() {
    let plugins = tempfile::tempdir().expect("plugins dir");
    install(plugins.path(), "hostile_analyzer.wasm", "reader", Some("version = 1\n[grants]\nstore = true\n"));
    let dir = plugins.path().to_str().expect("utf-8").to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    episode(&s, "an ordinary task", "ops", &["a", "b"], "success", 10).await;
    episode(&s, "another one", "ops", &["a", "b"], "failure", 10).await;
    episode(&s, "hostile:store count them", "ops", &["a", "b"], "success", 10).await;
    let h = analysed(&s, 3).await;
    let reader = analyzer(&h, "hostile");
    assert_eq!((reader["grants_store"].as_bool(), reader["batches_failed"].as_u64()), (Some(true), Some(0)), "{reader}");
    let found = ok(&s, "search_patterns", json!({"query": "hostile analyzer pattern", "domain": "ops", "min_relevance": 0.0, "limit": 20})).await;
    let counted = found["results"].as_array().expect("results").iter().find(|r| r["pattern"]["key"] == "store-count").unwrap_or_else(|| panic!("{found}"));
    assert_eq!(counted["pattern"]["data"]["count"], 3);
}

/// `wasm-tools component wit` of the example third-party analyzer, kept
/// in the repo. Refresh with `UPDATE_GOLDEN=1 ./scripts/test.sh plugin_wit`.
#[test]
fn example_analyzer_plugin_wit_matches_golden() {
    matches_golden("slow_steps.wasm", "slow-steps/slow-steps.wit", "export memory-mcp:patterns/analyzer@0.1.0;");
}

/// The same for the example third-party scorer.
#[test]
fn example_scorer_plugin_wit_matches_golden() {
    matches_golden("recency_scorer.wasm", "recency-scorer/recency-scorer.wit", "export memory-mcp:patterns/scorer@0.2.0;");
}

/// Prints the WIT of a built example component (`wasm` in the components
/// directory) and compares it with `plugins/<golden>`.
fn matches_golden(wasm: &str, golden: &str, export: &str) {
    let bytes = std::fs::read(components_dir().join(wasm)).unwrap_or_else(|e| panic!("{wasm} (build the components first): {e}"));
    let decoded = wit_component::decode(&bytes).expect("a component");
    let mut printer = wit_component::WitPrinter::default();
    printer.print(decoded.resolve(), decoded.package(), &[]).expect("print");
    let wit = printer.output.to_string();
    assert!(wit.contains(export), "{wit}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &wit).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (refresh with UPDATE_GOLDEN=1)");
    assert_eq!(wit, want, "the plugin's WIT changed; refresh with UPDATE_GOLDEN=1 if intended");
}
