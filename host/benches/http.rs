//! Streamable HTTP against stdio: `cargo bench -p memory-mcp --bench http`.
//!
//! Spawns the real binary twice on fresh data dirs with the shared artifact
//! cache: once on stdio (rmcp's child-process client), once with
//! `serve --http 127.0.0.1:0` and a token (rmcp's Streamable HTTP client).
//! Measures:
//!
//! - the `execute_agent_code` round trip (`return 1`), sequential,
//!   `BENCH_HTTP_CALLS` calls (default 500) after 50 warm-up calls: p50, p99;
//! - throughput over HTTP with 1, 10 and 100 concurrent clients (each its
//!   own session), each making `BENCH_HTTP_PER_CLIENT` calls (default 50),
//!   with limits configured so 100 fit (`--max-sessions 128`,
//!   `--max-concurrent-requests 128`, `--max-concurrency 8`,
//!   `--max-queued 1024`): calls per second and failures.
//!
//! Failures at 100 clients fail the bench.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const TOKEN: &str = "bench-token-0123456789abcdef";
const LIMITS: &[&str] = &["--max-concurrency", "8", "--max-queued", "1024"];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memory-mcp")
}

fn cache() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/artifact-cache")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn call_params() -> CallToolRequestParams {
    let args = serde_json::json!({"code": "return 1"});
    CallToolRequestParams::new("execute_agent_code").with_arguments(args.as_object().cloned().unwrap_or_default())
}

/// One call; Ok when the code ran and returned 1.
async fn call(c: &RunningService<RoleClient, ()>) -> Result<(), String> {
    let r = c.call_tool(call_params()).await.map_err(|e| e.to_string())?;
    let ok = r.structured_content.as_ref().is_some_and(|s| s["status"] == "success" && s["output"] == 1);
    if ok { Ok(()) } else { Err(format!("{:?}", r.structured_content)) }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn round_trips(c: &RunningService<RoleClient, ()>, n: usize) -> (Duration, Duration) {
    for _ in 0..50 {
        call(c).await.expect("warm-up call");
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call(c).await.expect("call");
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

async fn http_client(url: &str) -> Result<RunningService<RoleClient, ()>, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(TOKEN.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let calls = env_usize("BENCH_HTTP_CALLS", 500);
    let per_client = env_usize("BENCH_HTTP_PER_CLIENT", 50);

    // stdio
    let stdio_dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir").arg(stdio_dir.path()).arg("--cache-dir").arg(cache()).args(LIMITS).env("MEMORY_MCP_LOG", "error");
    cmd.stderr(Stdio::null());
    let stdio = ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("initialize over stdio");
    let (s50, s99) = round_trips(&stdio, calls).await;
    stdio.cancel().await.ok();

    // HTTP
    let http_dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(http_dir.path())
        .arg("--cache-dir")
        .arg(cache())
        .args(LIMITS)
        .args(["serve", "--http", "127.0.0.1:0", "--max-sessions", "128", "--max-concurrent-requests", "128"])
        .env("MEMORY_MCP_TOKEN", TOKEN)
        .env("MEMORY_MCP_LOG", "warn,memory_mcp::http=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve --http");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines.next_line().await.expect("stderr").expect("the server logs its URL");
        if let Some(i) = line.find("at http://") {
            break line[i + 3..].split_whitespace().next().unwrap_or_default().to_string();
        }
    };
    // Drain the per-request log lines so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let one = http_client(&url).await.expect("initialize over HTTP");
    let (h50, h99) = round_trips(&one, calls).await;
    one.cancel().await.ok();

    println!("execute_agent_code round trip (`return 1`, {calls} sequential calls):");
    println!("  stdio: p50 {}  p99 {}", ms(s50), ms(s99));
    println!("  HTTP : p50 {}  p99 {}", ms(h50), ms(h99));
    println!("HTTP throughput ({per_client} calls per client, each client its own session):");
    let mut failed_at_100 = 0;
    for clients in [1usize, 10, 100] {
        let mut sessions = Vec::new();
        for _ in 0..clients {
            sessions.push(http_client(&url).await.expect("a session"));
        }
        let started = Instant::now();
        let runs = futures::future::join_all(sessions.iter().map(|c| async move {
            let mut failures = 0usize;
            for _ in 0..per_client {
                if call(c).await.is_err() {
                    failures += 1;
                }
            }
            failures
        }))
        .await;
        let elapsed = started.elapsed();
        let failures: usize = runs.iter().sum();
        let total = clients * per_client;
        println!(
            "  {clients:>3} clients: {total} calls in {:.2} s = {:.0} calls/s, {failures} failures",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        if clients == 100 {
            failed_at_100 = failures;
        }
        for c in sessions {
            c.cancel().await.ok();
        }
    }
    child.start_kill().ok();
    assert_eq!(failed_at_100, 0, "calls failed at 100 concurrent clients");
}
