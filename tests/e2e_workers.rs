//! No wasm holds an async worker, and no agent code runs outside its
//! limits: while the worst case of each wasm path runs (a spinning
//! execution, a spinning plugin call, a hostile plugin build, a looping
//! analyzer batch, a large TypeScript strip, a stream of embedder calls,
//! the JS runtime's snapshot at a cold start), the server still answers
//! `ping` within [`BOUND`].
//!
//! The server runs with one tokio worker (`TOKIO_WORKER_THREADS=1`), so a
//! guest or a CPU-bound host step that kept its worker would keep every
//! reply waiting. The bound is generous: it fails only if a worker is
//! blocked, not because the machine is busy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, ok, text};
use rmcp::ServiceExt;
use rmcp::model::{ClientRequest, PingRequest};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tempfile::TempDir;

/// The slowest a `ping` may be answered while a worst case runs.
const BOUND: Duration = Duration::from_secs(2);

/// A server with one async worker thread.
async fn spawn_one_worker(extra: &[&str]) -> Server {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = common::command(&data_dir, extra);
    cmd.env("TOKIO_WORKER_THREADS", "1");
    let client = ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("MCP initialize");
    Server { client, data_dir }
}

async fn ping(s: &Server) -> Duration {
    let t = Instant::now();
    s.client.send_request(ClientRequest::PingRequest(PingRequest::default())).await.expect("ping");
    t.elapsed()
}

/// What [`while_pinging`] saw.
struct Pinged<T> {
    out: T,
    /// How long the work took.
    took: Duration,
    /// The slowest ping, counting one still unanswered when the work ended.
    slowest: Duration,
    pings: usize,
}

/// Runs `work`, pinging the server every 20 ms until it is done.
async fn while_pinging<T>(s: &Server, work: impl Future<Output = T>) -> Pinged<T> {
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    let (mut slowest, mut pings) = (Duration::ZERO, 0);
    loop {
        let sent = Instant::now();
        tokio::select! {
            out = &mut work => {
                return Pinged { out, took: started.elapsed(), slowest: slowest.max(sent.elapsed()), pings };
            }
            took = ping(s) => {
                slowest = slowest.max(took);
                pings += 1;
            }
        }
        tokio::select! {
            out = &mut work => return Pinged { out, took: started.elapsed(), slowest, pings },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn assert_responsive<T>(what: &str, p: &Pinged<T>, ran_at_least: Duration) {
    eprintln!("{what}: ran {:?}, {} pings, slowest {:?}", p.took, p.pings, p.slowest);
    assert!(p.took >= ran_at_least, "{what} ran only {:?}: the worst case did not happen", p.took);
    assert!(p.pings >= 3, "{what}: only {} pings answered in {:?}", p.pings, p.took);
    assert!(p.slowest < BOUND, "{what}: a ping took {:?} (a worker was blocked)", p.slowest);
}

/// A script that ran successfully, ready for `save_plugin`.
async fn ran_ok(s: &Server, code: &str) -> String {
    let r = s.exec(code).await;
    assert_eq!(r["status"], "success", "{r}");
    r["execution_id"].as_str().expect("id").to_string()
}

async fn tool_names(s: &Server) -> Vec<String> {
    s.client.list_all_tools().await.expect("tools/list").into_iter().map(|t| t.name.to_string()).collect()
}

#[tokio::test]
async fn a_spinning_execution_holds_no_worker() {
    let s = spawn_one_worker(&[]).await;
    s.exec("return 1").await;
    let p = while_pinging(&s, s.exec_with(json!({"code": "while (true) {}", "timeout_ms": 2500}))).await;
    assert_eq!(p.out["status"], "timeout", "{}", p.out);
    assert_responsive("spinning execution", &p, Duration::from_secs(2));
}

#[tokio::test]
async fn a_spinning_plugin_call_holds_no_worker() {
    let s = spawn_one_worker(&[]).await;
    let id = ran_ok(&s, "if (context.input && context.input.spin) { while (true) {} } return 'ok'").await;
    ok(&s, "save_plugin", json!({"execution_id": id, "name": "spinner", "description": "Spins on demand.", "allow_tools": [], "timeout_ms": 2500})).await;
    let p = while_pinging(&s, s.call("spinner", json!({"spin": true}))).await;
    assert_eq!(p.out.is_error, Some(true));
    assert_eq!(p.out.structured_content.as_ref().map(|v| v["status"].clone()), Some(json!("timeout")), "{}", text(&p.out));
    assert_responsive("spinning plugin call", &p, Duration::from_secs(2));
}

/// Closes the wrapper the script runs in, and spins only where `context`
/// is not set: at build time, not in `execute_agent_code`.
const ESCAPE_SPIN: &str = "}); if (typeof context === 'undefined') { for (;;) {} } (async function () {";
/// Closes the wrapper and computes a value at build time that the plugin
/// would keep.
const ESCAPE_KEEP: &str = "}); globalThis.kept = 42; (async function () { return globalThis.kept";

#[tokio::test]
async fn a_script_that_escapes_its_function_never_reaches_a_build() {
    let s = spawn_one_worker(&[]).await;
    s.exec("return 1").await;
    for (name, code) in [("escape-spin", ESCAPE_SPIN), ("escape-keep", ESCAPE_KEEP)] {
        // It does not compile as a function body, so it does not run; it
        // is refused at once, not at the execution's deadline.
        let t = Instant::now();
        let r = s.exec_with(json!({"code": code, "timeout_ms": 4000})).await;
        assert_eq!(r["status"], "error", "{name}: {r}");
        assert!(t.elapsed() < BOUND, "{name}: took {:?}", t.elapsed());
        // save_plugin refuses it (it did not run successfully), promptly,
        // and the server keeps answering.
        let id = r["execution_id"].as_str().expect("id").to_string();
        let save = json!({"execution_id": id, "name": name, "description": "hostile", "allow_tools": [], "timeout_ms": 2000});
        let p = while_pinging(&s, s.call("save_plugin", save)).await;
        assert_eq!(p.out.is_error, Some(true), "{name}: {}", text(&p.out));
        assert!(p.took < Duration::from_millis(2500), "{name}: save_plugin answered after {:?}", p.took);
        assert!(p.slowest < BOUND, "{name}: a ping took {:?}", p.slowest);
        assert!(!tool_names(&s).await.contains(&name.to_string()), "{name} was saved");
    }
}

#[tokio::test]
async fn nothing_of_a_plugin_runs_at_build_time() {
    let s = spawn_one_worker(&[]).await;
    // A counter kept in the global object: each call starts from the
    // snapshot, so it reads 1 unless the body ran while the snapshot was
    // taken.
    let id = ran_ok(&s, "globalThis.n = (globalThis.n || 0) + 1; return globalThis.n").await;
    ok(&s, "save_plugin", json!({"execution_id": id, "name": "counter", "description": "Counts its runs.", "allow_tools": []})).await;
    for _ in 0..2 {
        let r = s.call("counter", json!({})).await;
        assert_eq!(r.structured_content.as_ref().map(|v| v["output"].clone()), Some(json!(1)), "{}", text(&r));
    }
    // A body that would spin if it ran builds at once.
    let id = ran_ok(&s, "if (context.input !== null) { while (true) {} } return 0").await;
    let p = while_pinging(&s, s.call("save_plugin", json!({"execution_id": id, "name": "spin-if-run", "description": "Spins if run.", "allow_tools": [], "timeout_ms": 2000}))).await;
    assert_ne!(p.out.is_error, Some(true), "{}", text(&p.out));
    assert!(p.slowest < BOUND, "a ping took {:?}", p.slowest);
}

#[tokio::test]
async fn a_build_answers_by_the_plugins_deadline() {
    let s = spawn_one_worker(&[]).await;
    // A large body: compiling it takes longer than the 1 ms the plugin
    // allows itself.
    let body: String = (0..2_400).map(|i| format!("const v{i} = [{i}, '{i}', {{k: {i}}}];\n")).collect::<String>() + "return v0[0]";
    let r = s.exec_with(json!({"code": body})).await;
    assert_eq!(r["status"], "success", "{r}");
    let id = r["execution_id"].as_str().expect("id");
    let p = while_pinging(&s, s.call("save_plugin", json!({"execution_id": id, "name": "big", "description": "Big.", "allow_tools": [], "timeout_ms": 1}))).await;
    assert_eq!(p.out.is_error, Some(true), "a build past its deadline was saved");
    assert!(p.took < Duration::from_secs(1), "save_plugin answered after {:?}", p.took);
    assert!(!tool_names(&s).await.contains(&"big".to_string()));
    // With the default budget the same body builds.
    ok(&s, "save_plugin", json!({"execution_id": id, "name": "big", "description": "Big.", "allow_tools": []})).await;
    let r = s.call("big", json!({})).await;
    assert_eq!(r.structured_content.as_ref().map(|v| v["output"].clone()), Some(json!(0)), "{}", text(&r));
}

#[tokio::test]
async fn a_large_typescript_strip_holds_no_worker() {
    let s = spawn_one_worker(&[]).await;
    s.exec("return 1").await;
    // Close to the code-size limit, and type-heavy.
    let mut code = String::new();
    let mut i = 0;
    while code.len() < 95 * 1024 {
        code.push_str(&format!(
            "type T{i}<A extends {{a: number}}, B = Array<Map<string, A>>> = {{ [K in keyof A]: A[K] extends number ? B : never }};\nconst x{i}: T{i}<{{a: 1}}> = {{}} as any;\n"
        ));
        i += 1;
    }
    code.push_str("return 1;");
    let work = async {
        let mut runs = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            runs.push(s.exec_with(json!({"code": code, "language": "typescript"})).await);
        }
        runs
    };
    let p = while_pinging(&s, work).await;
    for r in &p.out {
        assert_eq!(r["status"], "success", "{r}");
    }
    assert_responsive("TypeScript strips", &p, Duration::from_secs(2));
}

fn components_dir() -> PathBuf {
    std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"))
}

async fn health(s: &Server) -> Value {
    ok(s, "health_check", json!({})).await
}

fn analyzer<'a>(h: &'a Value, name: &str) -> Option<&'a Value> {
    h["learning"]["analyzers"].as_array()?.iter().find(|a| a["analyzer"] == name)
}

#[tokio::test]
async fn a_looping_analyzer_batch_holds_no_worker() {
    // A plugins dir in the flat layout the server migrates at start.
    let plugins = tempfile::tempdir().expect("plugins dir");
    let wasm = std::fs::read(components_dir().join("hostile_analyzer.wasm")).expect("hostile_analyzer.wasm (build the components first)");
    std::fs::write(plugins.path().join("hostile.wasm"), wasm).expect("write");
    let policy = "version = 1\n[limits]\nfuel = 20_000_000_000\nmemory_mb = 32\ntimeout_ms = 2_500\nmax_patterns = 100\n";
    std::fs::write(plugins.path().join("hostile.policy.toml"), policy).expect("write");
    let dir = plugins.path().to_str().expect("utf-8").to_string();
    let s = spawn_one_worker(&["--plugins-dir", &dir]).await;
    let started = Instant::now();
    while analyzer(&health(&s).await, "hostile").is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "the hostile analyzer did not load: {}", health(&s).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let work = async {
        let r = ok(&s, "create_episode", json!({"task_description": "hostile:loop task", "domain": "ops", "task_type": "code_generation"})).await;
        let id = r["episode_id"].as_str().expect("id").to_string();
        ok(&s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "probe", "action": "run", "result": {"type": "success"}, "latency_ms": 5})).await;
        ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
        loop {
            let h = health(&s).await;
            if analyzer(&h, "hostile").is_some_and(|a| a["batches_failed"].as_u64().unwrap_or(0) >= 1) {
                return h;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "the batch did not end: {}", h["learning"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let p = while_pinging(&s, work).await;
    let last = analyzer(&p.out, "hostile").map(|a| a["last_error"].to_string()).unwrap_or_default();
    // Fuel or the wall clock, whichever the machine's speed makes first.
    assert!(last.contains("fuel") || last.contains("time") || last.contains("wall-clock"), "{last}");
    assert_responsive("looping analyzer", &p, Duration::from_millis(500));
}

#[tokio::test]
async fn embedder_calls_hold_no_worker() {
    const EPISODES: usize = 100;
    let s = spawn_one_worker(&[]).await;
    let words = ["deploy", "schema", "migration", "cache", "latency", "rollback", "index", "queue"];
    let work = async {
        for i in 0..EPISODES {
            let desc: String = (0..1_200).map(|j| words[(i * 7 + j) % words.len()]).collect::<Vec<_>>().join(" ");
            let r = ok(&s, "create_episode", json!({"task_description": desc, "domain": "ops", "task_type": "analysis"})).await;
            let id = r["episode_id"].as_str().expect("id").to_string();
            ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
        }
        let started = Instant::now();
        loop {
            let h = health(&s).await;
            let e = &h["embeddings"];
            if e["pending"] == 0 && e["indexed"]["episodes"].as_u64().unwrap_or(0) >= EPISODES as u64 {
                return h;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "embedding did not finish: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let p = while_pinging(&s, work).await;
    assert_responsive("embedding", &p, Duration::from_millis(200));
}

#[tokio::test]
async fn a_cold_start_snapshot_holds_no_worker() {
    // A fresh artifact cache: the JS runtime is instrumented, compiled and
    // snapshotted, and everything else compiled, while the server serves.
    let data: TempDir = tempfile::tempdir().expect("data dir");
    let cache = tempfile::tempdir().expect("cache dir");
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(data.path())
        .arg("--cache-dir")
        .arg(cache.path())
        .env_remove("MEMORY_MCP_CONFIG")
        .env("MEMORY_MCP_LOG", "warn")
        .env("TOKIO_WORKER_THREADS", "1")
        .stderr(std::process::Stdio::null());
    let client = ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("MCP initialize");
    let s = Server { client, data_dir: data };
    // Tool calls wait for the runtime; TypeScript waits for the stripper
    // (on a cold cache its first call may time out while it compiles).
    let work = async {
        let js = s.exec("return 1").await;
        let started = Instant::now();
        loop {
            let ts = s.exec_with(json!({"code": "const x: number = 1; return x", "language": "typescript"})).await;
            if ts["status"] == "success" || started.elapsed() > Duration::from_secs(120) {
                return (js, ts);
            }
        }
    };
    let p = while_pinging(&s, work).await;
    assert_eq!((p.out.0["status"].as_str(), p.out.1["status"].as_str()), (Some("success"), Some("success")), "{:?}", p.out);
    assert_responsive("cold start", &p, Duration::from_millis(500));
}
