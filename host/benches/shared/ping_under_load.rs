//! `ping` latency while the worst case of each wasm path runs, against the
//! real binary over stdio with one tokio worker (`TOKIO_WORKER_THREADS=1`),
//! so that anything holding the worker shows as a slow ping.
//!
//! `MEMORY_MCP_BENCH_BIN` runs another build of the binary (to compare a
//! build from before a change).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientRequest, PingRequest};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

fn binary() -> PathBuf {
    std::env::var_os("MEMORY_MCP_BENCH_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_memory-mcp")))
}

fn components_dir() -> PathBuf {
    std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"))
}

async fn start(cache: &Path, data: &Path, plugins: Option<&Path>) -> Client {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.arg("--data-dir").arg(data).arg("--cache-dir").arg(cache);
    if let Some(p) = plugins {
        cmd.arg("--plugins-dir").arg(p);
    }
    cmd.env("MEMORY_MCP_LOG", "error").env("TOKIO_WORKER_THREADS", "1").env_remove("MEMORY_MCP_CONFIG").stderr(Stdio::null());
    ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("initialize")
}

async fn call(c: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else { unreachable!() };
    c.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)).await.expect("call")
}

fn field(r: &CallToolResult, key: &str) -> Value {
    r.structured_content.as_ref().map(|v| v[key].clone()).unwrap_or(Value::Null)
}

/// Runs `work` while pinging every 10 ms; the ping latencies (one still
/// unanswered when the work ends counts up to then), sorted, and how long
/// the work took.
async fn pinging<T>(c: &Client, work: impl Future<Output = T>) -> (Vec<Duration>, Duration, T) {
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    let mut pings = Vec::new();
    loop {
        let sent = Instant::now();
        tokio::select! {
            out = &mut work => {
                pings.push(sent.elapsed());
                pings.sort();
                return (pings, started.elapsed(), out);
            }
            r = c.send_request(ClientRequest::PingRequest(PingRequest::default())) => {
                r.expect("ping");
                pings.push(sent.elapsed());
            }
        }
        tokio::select! {
            out = &mut work => {
                pings.sort();
                return (pings, started.elapsed(), out);
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn row(case: &str, pings: &[Duration], took: Duration, note: &str) {
    let q = |p: f64| pings[((pings.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "| {case} | {} | {} / {} / {} | {} | {note} |",
        pings.len(),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(q(1.0)),
        ms(took)
    );
}

async fn exec(c: &Client, code: &str, extra: Value) -> CallToolResult {
    let mut args = json!({"code": code});
    if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    call(c, "execute_agent_code", args).await
}

/// Prints the table: each worst case, the pings answered while it ran,
/// their p50 / p99 / max, and how long the case took.
pub async fn report(cache: &Path) {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let analyzer = std::fs::read(components_dir().join("hostile_analyzer.wasm")).ok();
    if let Some(wasm) = &analyzer {
        std::fs::write(plugins.path().join("hostile.wasm"), wasm).expect("write");
        let policy = "version = 1\n[limits]\nfuel = 20_000_000_000\nmemory_mb = 32\ntimeout_ms = 3_000\nmax_patterns = 100\n";
        std::fs::write(plugins.path().join("hostile.policy.toml"), policy).expect("write");
    }
    let c = start(cache, data.path(), Some(plugins.path())).await;
    // Warm: the runtime, the stripper, the templates.
    exec(&c, "return 1", json!({})).await;
    exec(&c, "const x: number = 1; return x", json!({"language": "typescript"})).await;
    let r = exec(&c, "return 1", json!({})).await;
    let id = field(&r, "execution_id");
    call(&c, "save_plugin", json!({"execution_id": id, "name": "warm", "description": "warm", "allow_tools": []})).await;

    println!("| running (server with 1 tokio worker) | pings | ping p50 / p99 / max | case took | note |");
    println!("|---|---|---|---|---|");
    let (p, took, _) = pinging(&c, tokio::time::sleep(Duration::from_secs(2))).await;
    row("nothing (baseline)", &p, took, "");

    let (p, took, r) = pinging(&c, exec(&c, "while (true) {}", json!({"timeout_ms": 3000}))).await;
    row("spinning execution (3 s timeout)", &p, took, &format!("status {}", field(&r, "status")));

    let r = exec(&c, "if (context.input && context.input.spin) { while (true) {} } return 'ok'", json!({})).await;
    let id = field(&r, "execution_id");
    call(&c, "save_plugin", json!({"execution_id": id, "name": "spinner", "description": "spins", "allow_tools": [], "timeout_ms": 3000})).await;
    let (p, took, r) = pinging(&c, call(&c, "spinner", json!({"spin": true}))).await;
    row("spinning plugin call (3 s timeout)", &p, took, &format!("status {}", field(&r, "status")));

    let body: String = (0..2_400).map(|i| format!("const v{i} = [{i}, '{i}', {{k: {i}}}];\n")).collect::<String>() + "return v0[0]";
    let r = exec(&c, &body, json!({})).await;
    let id = field(&r, "execution_id");
    let (p, took, r) = pinging(&c, call(&c, "save_plugin", json!({"execution_id": id, "name": "big", "description": "big", "allow_tools": []}))).await;
    row(&format!("plugin build, {} KB body", body.len() / 1024), &p, took, if r.is_error == Some(true) { "failed" } else { "built" });

    // Closes the wrapper; spins where `context` is unset (at build time).
    let escape = "}); if (typeof context === 'undefined') { for (;;) {} } (async function () {";
    let hostile = async {
        let r = exec(&c, escape, json!({"timeout_ms": 3000})).await;
        let status = field(&r, "status");
        let id = field(&r, "execution_id");
        let t = Instant::now();
        let saved = call(&c, "save_plugin", json!({"execution_id": id, "name": "hostile-build", "description": "x", "allow_tools": [], "timeout_ms": 2000})).await;
        (status, t.elapsed(), saved.is_error != Some(true))
    };
    let (p, took, (status, reply, saved)) = pinging(&c, hostile).await;
    row(
        "hostile build (wrapper escape, save_plugin timeout_ms 2000)",
        &p,
        took,
        &format!("execution {status}; save_plugin answered in {} ({})", ms(reply), if saved { "saved" } else { "refused" }),
    );

    let mut ts = String::new();
    let mut i = 0;
    while ts.len() < 95 * 1024 {
        ts.push_str(&format!("type T{i}<A extends {{a: number}}, B = Array<Map<string, A>>> = {{ [K in keyof A]: A[K] extends number ? B : never }};\nconst x{i}: T{i}<{{a: 1}}> = {{}} as any;\n"));
        i += 1;
    }
    ts.push_str("return 1;");
    let strips = async {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(3) {
            exec(&c, &ts, json!({"language": "typescript"})).await;
            n += 1;
        }
        n
    };
    let (p, took, n) = pinging(&c, strips).await;
    row("TypeScript strips, 95 KB each, back to back", &p, took, &format!("{n} strips"));

    let embed = async {
        let words = ["deploy", "schema", "migration", "cache", "latency", "rollback", "index", "queue"];
        for i in 0..40 {
            let desc: String = (0..1_200).map(|j| words[(i * 7 + j) % words.len()]).collect::<Vec<_>>().join(" ");
            let r = call(&c, "create_episode", json!({"task_description": desc, "domain": "ops", "task_type": "analysis"})).await;
            let id = field(&r, "episode_id");
            call(&c, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
        }
        loop {
            let h = call(&c, "health_check", json!({})).await;
            let e = field(&h, "embeddings");
            if e["pending"] == 0 && e["indexed"]["episodes"].as_u64().unwrap_or(0) >= 40 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (p, took, ()) = pinging(&c, embed).await;
    row("40 episodes of ~9 KB recorded and embedded", &p, took, "");

    if analyzer.is_some() {
        let looping = async {
            let r = call(&c, "create_episode", json!({"task_description": "hostile:loop task", "domain": "ops", "task_type": "analysis"})).await;
            let id = field(&r, "episode_id");
            call(&c, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
            let started = Instant::now();
            loop {
                let h = call(&c, "health_check", json!({})).await;
                let failed = field(&h, "learning")["analyzers"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["analyzer"] == "hostile").map(|a| a["batches_failed"].as_u64().unwrap_or(0)))
                    .unwrap_or(0);
                if failed >= 1 || started.elapsed() > Duration::from_secs(30) {
                    return failed;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let (p, took, failed) = pinging(&c, looping).await;
        row("analyzer batch looping until its fuel runs out", &p, took, &format!("{failed} batch failed"));
    }
    let _ = c.cancel().await;

    let cold = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let c = start(cold.path(), data.path(), None).await;
    let (p, _, ()) = pinging(&c, async {
        exec(&c, "return 1", json!({})).await;
        exec(&c, "const x: number = 1; return x", json!({"language": "typescript"})).await;
    })
    .await;
    row("cold start: runtime snapshot and compiles, empty cache", &p, started.elapsed(), "until JS and TS run");
    let _ = c.cancel().await;
}
