//! Episodic memory end to end over MCP stdio: the lifecycle, bad input,
//! queries, restart, a second process, and SIGKILL at random moments.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::Duration;

use common::process::field as proc_field;
use common::{Server, err, ok, spawn, spawn_in};
use serde_json::{Value, json};

async fn create(s: &Server, desc: &str, domain: &str, task_type: &str) -> String {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": domain, "task_type": task_type, "context": {"language": "rust", "tags": ["t"]}})).await;
    r["episode_id"].as_str().unwrap().to_string()
}

async fn step(s: &Server, id: &str, n: u32, tool: &str, action: &str, status: &str) -> Value {
    ok(s, "add_episode_step", json!({"episode_id": id, "step_number": n, "tool": tool, "action": action, "result": {"type": status, "output": "ok"}, "latency_ms": 10})).await
}

async fn complete(s: &Server, id: &str, outcome: &str) -> Value {
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": outcome, "verdict": "done", "completed": ["a"], "failed": []}})).await
}

#[tokio::test]
async fn lifecycle_and_errors() {
    let s = spawn(&[]).await;
    let id = create(&s, "Add pagination to the orders endpoint", "web-api", "code_generation").await;
    step(&s, &id, 1, "cargo", "build", "error").await;
    assert!(err(&s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "x", "action": "y", "result": {"type": "success"}})).await.contains("expects step 2"));
    assert!(err(&s, "add_episode_step", json!({"episode_id": id, "step_number": 5, "tool": "x", "action": "y", "result": {"type": "success"}})).await.contains("out of order"));
    step(&s, &id, 2, "editor", "fix the import", "success").await;
    let done = complete(&s, &id, "success").await;
    assert!(done["reward"]["total"].as_f64().unwrap() > 0.9, "{done}");
    assert!(!done["reward"]["explanation"].as_array().unwrap().is_empty());
    assert!(done["reflection"]["successes"].to_string().contains("Recovered from cargo failure"), "{done}");
    assert!(err(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success"}})).await.contains("already completed"));
    assert!(err(&s, "add_episode_step", json!({"episode_id": id, "step_number": 3, "tool": "x", "action": "y", "result": {"type": "success"}})).await.contains("already completed"));

    let ep = ok(&s, "get_episode", json!({"episode_id": id})).await;
    assert_eq!(ep["status"], "completed");
    assert_eq!(ep["steps"].as_array().unwrap().len(), 2);
    assert_eq!(ep["steps"][0]["result"]["type"], "error");
    let tl = ok(&s, "get_episode_timeline", json!({"episode_id": id})).await;
    assert_eq!(tl["steps"].as_array().unwrap().len(), 2);
    assert!(tl["steps"][1]["gap_ms"].is_number());

    let up = ok(&s, "update_episode", json!({"episode_id": id, "tags": ["pagination", "orders"], "metadata": {"pr": "42"}})).await;
    assert_eq!(up["metadata"]["pr"], "42");
    let q = ok(&s, "query_memory", json!({"query": "pagination"})).await;
    assert_eq!(q["results"][0]["episode_id"], id.as_str());

    // Unknown, malformed, and bad input change nothing.
    let unknown = "01900000-0000-7000-8000-000000000000";
    assert!(err(&s, "get_episode", json!({"episode_id": unknown})).await.contains("not found"));
    assert!(err(&s, "get_episode", json!({"episode_id": "not-a-uuid"})).await.contains("not a UUID"));
    assert!(err(&s, "add_episode_step", json!({"episode_id": unknown, "step_number": 1, "tool": "x", "action": "y", "result": {"type": "success"}})).await.contains("not found"));
    assert!(err(&s, "create_episode", json!({"task_description": "x".repeat(10_001), "domain": "d", "task_type": "testing"})).await.contains("10000"));
    assert!(err(&s, "create_episode", json!({"task_description": "x", "domain": "d", "task_type": "cooking"})).await.contains("unknown variant"));
    assert!(err(&s, "create_episode", json!({"task_description": 5, "domain": "d", "task_type": "testing"})).await.contains("invalid type"));
    let other = create(&s, "big params", "d", "testing").await;
    let big = "x".repeat(70 * 1024);
    assert!(err(&s, "add_episode_step", json!({"episode_id": other, "step_number": 1, "tool": "x", "action": "y", "parameters": {"blob": big}, "result": {"type": "success"}})).await.contains("64"));
    assert!(err(&s, "add_episode_step", json!({"episode_id": other, "step_number": 1, "tool": "x", "action": "y", "result": {"type": "maybe"}})).await.contains("unknown variant"));
    assert_eq!(ok(&s, "get_episode", json!({"episode_id": other})).await["steps"], json!([]));
    assert!(err(&s, "query_memory", json!({"query": "x", "limit": 0})).await.contains("between 1 and 1000"));

    let bulk = ok(&s, "bulk_episodes", json!({"episode_ids": [id, unknown, "bad"]})).await;
    assert_eq!(bulk["episodes"].as_array().unwrap().len(), 1);
    assert_eq!(bulk["missing"], json!([unknown]));
    assert_eq!(bulk["invalid"][0]["episode_id"], "bad");
    let many: Vec<String> = (0..101).map(|_| unknown.to_string()).collect();
    assert!(err(&s, "bulk_episodes", json!({"episode_ids": many})).await.contains("limit is 100"));

    assert!(err(&s, "delete_episode", json!({"episode_id": id, "confirm": false})).await.contains("confirm"));
    let d = ok(&s, "delete_episode", json!({"episode_id": id, "confirm": true})).await;
    assert_eq!(d["steps_deleted"], 2);
    assert!(err(&s, "get_episode", json!({"episode_id": id})).await.contains("not found"));
    assert_eq!(ok(&s, "query_memory", json!({"query": "pagination"})).await["results"], json!([]));
}

#[tokio::test]
async fn query_ranks_filters_and_sorts() {
    let s = spawn(&[]).await;
    let a = create(&s, "Fix flaky integration test in the payments service", "payments", "debugging").await;
    step(&s, &a, 1, "cargo", "test flaky retry", "success").await;
    complete(&s, &a, "success").await;
    let b = create(&s, "Write docs for the payments API", "payments", "documentation").await;
    complete(&s, &b, "failure").await;
    let c = create(&s, "Refactor the search indexer", "search", "refactoring").await;
    step(&s, &c, 1, "editor", "split module", "success").await;
    let r = ok(&s, "query_memory", json!({"query": "flaky test"})).await;
    assert_eq!(r["results"][0]["episode_id"], a.as_str());
    assert_eq!(r["total_matches"], 1);
    let r = ok(&s, "query_memory", json!({"query": "payments", "task_type": "documentation"})).await;
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    assert_eq!(r["results"][0]["episode_id"], b.as_str());
    let r = ok(&s, "query_memory", json!({"query": "", "domain": "payments", "sort": "oldest"})).await;
    assert_eq!(r["results"][0]["episode_id"], a.as_str());
    let r = ok(&s, "query_memory", json!({"query": "", "sort": "newest", "limit": 1})).await;
    assert_eq!(r["results"][0]["episode_id"], c.as_str());
    let r = ok(&s, "query_memory", json!({"query": "", "sort": "success"})).await;
    assert_eq!(r["results"][0]["episode_id"], a.as_str());
    let qm = ok(&s, "quality_metrics", json!({"time_range": "24h", "include_trends": true})).await;
    assert_eq!(qm["completed"], 2);
    assert_eq!(qm["in_progress"], 1);
    assert_eq!(qm["success_rate"], 0.5);
    assert_eq!(qm["trend"]["buckets"].as_array().unwrap().len(), 10);
    let h = ok(&s, "health_check", json!({})).await;
    assert_eq!(h["storage"]["episodes"], 3);
    assert_eq!(h["storage"]["completed"], 2);
}

#[tokio::test]
async fn restart_keeps_episodes_and_a_second_process_is_refused() {
    let s = spawn(&[]).await;
    let id = create(&s, "Migrate the config loader to TOML", "config", "refactoring").await;
    step(&s, &id, 1, "editor", "rewrite loader", "success").await;
    complete(&s, &id, "success").await;

    // A second server on the same data dir gets a clear error and exits.
    let out = tokio::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(s.data_dir.path())
        .arg("--cache-dir")
        .arg(common::shared_cache())
        .stdin(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another memory-mcp process"), "{stderr}");

    let Server { client, data_dir } = s;
    client.cancel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = spawn_in(data_dir, &[]).await;
    let ep = ok(&s, "get_episode", json!({"episode_id": id})).await;
    assert_eq!(ep["status"], "completed");
    assert_eq!(ep["steps"][0]["action"], "rewrite loader");
    assert!(ep["reward"]["total"].as_f64().unwrap() > 0.0);
    let q = ok(&s, "query_memory", json!({"query": "toml loader"})).await;
    assert_eq!(q["results"][0]["episode_id"], id.as_str());
}

/// SIGKILL at random moments during a stream of create/step/complete
/// calls: after each restart the store opens, and every episode whose
/// `complete_episode` had been acknowledged is fully there.
#[tokio::test]
async fn sigkill_never_loses_acknowledged_episodes() {
    use std::sync::{Arc, Mutex};

    use rand::Rng;
    let data_dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let mut rng = rand::rng();
    for round in 0..8 {
        let transport = rmcp::transport::TokioChildProcess::new(common::command(&data_dir, &[])).unwrap();
        let pid = transport.id().unwrap();
        let client = rmcp::ServiceExt::serve((), transport).await.expect("the store opens after a kill");
        let s = Arc::new(Server { client, data_dir: tempfile::tempdir().unwrap() });
        let before = acked.lock().unwrap().clone();
        for (id, steps) in &before {
            let ep = ok(&s, "get_episode", json!({"episode_id": id})).await;
            assert_eq!(ep["status"], "completed", "round {round}: {id}");
            assert_eq!(ep["steps"].as_array().unwrap().len() as u32, *steps, "round {round}: {id}");
        }
        let writer = {
            let s = s.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0u32.. {
                    let id = create(&s, &format!("round {round} task {i}"), "crash", "testing").await;
                    let n = (i % 4) + 1;
                    for k in 1..=n {
                        step(&s, &id, k, "tool", "act", "success").await;
                    }
                    complete(&s, &id, "success").await;
                    acked.lock().unwrap().push((id, n));
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..400))).await;
        let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        // The writer fails on the dead connection; what it acknowledged stays.
        let _ = writer.await;
    }
    let n = acked.lock().unwrap().len();
    assert!(n > 10, "the test wrote too little to mean anything: {n}");
    eprintln!("{n} acknowledged episodes survived 8 SIGKILLs");
}

/// A server whose process id is known, for reading its /proc figures.
async fn spawn_with_pid() -> (Server, u32) {
    let data_dir = tempfile::tempdir().unwrap();
    let transport = rmcp::transport::TokioChildProcess::new(common::command(&data_dir, &[])).unwrap();
    let pid = transport.id().expect("child pid");
    let client = rmcp::ServiceExt::serve((), transport).await.expect("MCP initialize");
    (Server { client, data_dir }, pid)
}

/// 100 values of 60,000 characters: the 6 MB metadata of the report.
fn huge_metadata() -> Value {
    Value::Object((0..100).map(|i| (format!("k{i}"), json!("m".repeat(60_000)))).collect())
}

/// Just under the 64 KiB total: 16 values of 4,000 characters.
fn max_metadata() -> Value {
    Value::Object((0..16).map(|i| (format!("k{i}"), json!("m".repeat(4_000)))).collect())
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
    }
    n
}

#[tokio::test]
async fn metadata_is_bounded_in_total_and_nothing_is_stored_over_it() {
    let s = spawn(&[]).await;
    let r = s.call("create_episode", json!({"task_description": "huge metadata", "domain": "d", "task_type": "testing", "metadata": huge_metadata()})).await;
    assert_eq!(r.is_error, Some(true), "6 MB of metadata was accepted");
    let h = ok(&s, "health_check", json!({})).await;
    assert_eq!(h["storage"]["episodes"], 0, "{}", h["storage"]);
    // 64 KiB + 1 byte as JSON is refused as well; just under it is stored.
    let over = json!({"k": "m".repeat(64 * 1024 - 8 + 1)});
    assert_eq!(s.call("create_episode", json!({"task_description": "over", "domain": "d", "task_type": "testing", "metadata": over})).await.is_error, Some(true));
    let id = ok(&s, "create_episode", json!({"task_description": "max", "domain": "d", "task_type": "testing", "metadata": max_metadata()})).await["episode_id"].clone();
    // An update that would take the total over is refused whole.
    let more = json!({"episode_id": id, "tags": ["changed"], "metadata": {"extra": "x".repeat(4_000)}});
    assert_eq!(s.call("update_episode", more).await.is_error, Some(true));
    let ep = ok(&s, "get_episode", json!({"episode_id": id})).await;
    assert_eq!(ep["metadata"], max_metadata());
    assert_eq!(ep["context"]["tags"], json!([]));
    // Replacing values within the bound is fine.
    let up = ok(&s, "update_episode", json!({"episode_id": id, "metadata": {"k0": "short", "k1": ""}})).await;
    assert_eq!((up["metadata"]["k0"].as_str(), up["metadata"].get("k1")), (Some("short"), None));
}

/// Appending a step writes the step, not the header: 300 tiny steps on an
/// episode with the largest metadata allowed write a small multiple of
/// the steps' own bytes (the report's 6 MB header made them write 1.9 GB).
#[tokio::test]
async fn step_writes_are_proportional_to_the_step() {
    let (s, pid) = spawn_with_pid().await;
    let id = ok(&s, "create_episode", json!({"task_description": "many steps", "domain": "d", "task_type": "testing", "metadata": max_metadata()})).await["episode_id"].clone();
    let fjall = s.data_dir.path().join("episodes.fjall");
    let (written, disk) = (proc_field(pid, "io", "wchar"), dir_bytes(&fjall));
    let step = json!({"episode_id": id, "tool": "cargo", "action": "test", "result": {"type": "success", "output": "ok"}, "latency_ms": 1});
    let step_bytes = step.to_string().len() as u64;
    for n in 1..=300u32 {
        let mut a = step.clone();
        a["step_number"] = json!(n);
        ok(&s, "add_episode_step", a).await;
    }
    let written = proc_field(pid, "io", "wchar") - written;
    let grown = dir_bytes(&fjall).saturating_sub(disk);
    eprintln!("300 steps of ~{step_bytes} B: {written} B written (incl. replies), data dir +{grown} B");
    // Journal and replies included; one header rewrite per step would be
    // 300 × 64 KiB ≈ 19.7 MB.
    let bound = 300 * step_bytes * 8;
    assert!(written < bound, "300 steps wrote {written} B; the bound is {bound} B");
    assert!(grown < bound, "the data dir grew {grown} B; the bound is {bound} B");
    let ep = ok(&s, "get_episode", json!({"episode_id": id})).await;
    assert_eq!((ep["step_count"].as_u64(), ep["steps"].as_array().map(Vec::len)), (Some(300), Some(300)));
}

/// 200 open episodes each given the largest metadata the server takes
/// (after it refuses 6 MB) keep the server's RSS bounded: headers are not
/// held in memory per open episode.
#[tokio::test]
async fn open_episodes_keep_rss_bounded() {
    let (s, pid) = spawn_with_pid().await;
    // The baseline once everything has loaded in the background, and a
    // first large frame has been read.
    for _ in 0..600 {
        let h = ok(&s, "health_check", json!({})).await;
        if h["sandbox"]["state"] == "ready" && h["learning"]["state"] == "ready" && h["embeddings"]["state"]["status"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = s.call("create_episode", json!({"task_description": "warm-up", "domain": "d", "task_type": "testing", "metadata": huge_metadata()})).await;
    let before = proc_field(pid, "status", "VmRSS");
    let mut ids = Vec::new();
    let mut accepted_huge = 0;
    for i in 0..200 {
        let huge = s.call("create_episode", json!({"task_description": format!("open {i}"), "domain": "d", "task_type": "testing", "metadata": huge_metadata()})).await;
        if huge.is_error != Some(true) {
            accepted_huge += 1;
            ids.push(huge.structured_content.unwrap()["episode_id"].clone());
        }
    }
    let refused = proc_field(pid, "status", "VmRSS");
    // Those refused: the largest metadata allowed instead.
    while ids.len() < 200 {
        let i = ids.len();
        ids.push(ok(&s, "create_episode", json!({"task_description": format!("open {i}"), "domain": "d", "task_type": "testing", "metadata": max_metadata()})).await["episode_id"].clone());
    }
    for id in &ids {
        ok(&s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "t", "action": "a", "result": {"type": "success"}})).await;
    }
    let after = proc_field(pid, "status", "VmRSS");
    eprintln!(
        "RSS {} MB -> {} MB after 200 creates with 6 MB metadata ({accepted_huge} accepted) -> {} MB with 200 open episodes",
        before / 1024,
        refused / 1024,
        after / 1024
    );
    // Reading 6 MB frames costs allocator memory, bounded; holding 200
    // such headers cost 1.1 GB.
    let total_mb = after.saturating_sub(before) / 1024;
    assert!(total_mb < 300, "RSS grew {total_mb} MB");
    // 200 open episodes with 64 KiB of metadata each: their headers are not
    // held (12.8 MB if they were, with the rest of a create's allocations).
    let open_mb = after.saturating_sub(refused) / 1024;
    assert!(open_mb < 24, "RSS grew {open_mb} MB with 200 open episodes");
}
