//! Code-mode benchmark: `cargo bench -p memory-mcp --bench sandbox`
//! (or `scripts/bench.sh`). Prints a Markdown table, the one in the README.
//!
//! Measures, for a trivial script and a ~3 KB JSON-transform script:
//! in-process latency, MCP stdio round trip, throughput at concurrency 1,
//! 2 and 20, and the server's peak RSS with 1,000 executions in flight.
//! In the same run, the seed's approach as the baseline: a fresh `node`
//! process per execution. Then `ping` latency while the worst case of each
//! wasm path runs (`shared/ping_under_load.rs`; `BENCH_PING_ONLY` runs
//! only that).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memory_mcp::metrics::Metrics;
use memory_mcp::wasm::ArtifactCache;
use memory_mcp::sandbox::{CompiledPolicy, Execution, Grants, NoServers, Profile, Sandbox, SandboxConfig};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

#[path = "shared/ping_under_load.rs"]
mod ping_under_load;

const TRIVIAL: &str = "return 1 + 2";

/// A ~3 KB script: builds records, filters, groups, sorts, summarises.
fn json_transform() -> String {
    let mut s = String::from(
        r#"// Group orders by customer, keep paid ones, and summarise.
const orders = context.input.orders;
const byCustomer = {};
for (const o of orders) {
  if (o.status !== "paid") continue;
  const c = byCustomer[o.customer] ?? (byCustomer[o.customer] = { customer: o.customer, total: 0, items: 0, skus: new Set() });
  c.total += o.lines.reduce((sum, l) => sum + l.qty * l.price, 0);
  c.items += o.lines.reduce((n, l) => n + l.qty, 0);
  for (const l of o.lines) c.skus.add(l.sku);
}
const rows = Object.values(byCustomer)
  .map(c => ({ customer: c.customer, total: Math.round(c.total * 100) / 100, items: c.items, distinctSkus: c.skus.size }))
  .sort((a, b) => b.total - a.total || a.customer.localeCompare(b.customer));
const grand = rows.reduce((s, r) => s + r.total, 0);
const top = rows.slice(0, 3).map(r => r.customer);
const histogram = {};
for (const r of rows) {
  const bucket = r.total < 100 ? "small" : r.total < 500 ? "medium" : "large";
  histogram[bucket] = (histogram[bucket] ?? 0) + 1;
}
"#,
    );
    // Pad to ~3 KB with realistic helper code.
    for i in 0..12 {
        s.push_str(&format!(
            "function helper{i}(xs) {{ return xs.filter(x => x % {m} === 0).map(x => ({{ v: x, sq: x * x, tag: 'h{i}-' + x }})).slice(0, 5); }}\n",
            m = i + 2
        ));
    }
    s.push_str("return { rows, grand: Math.round(grand * 100) / 100, top, histogram, h: helper3([1,2,3,4,5,6,7,8,9,10]).length };\n");
    s
}

fn orders() -> Value {
    let customers = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
    let orders: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "id": i,
                "customer": customers[i % customers.len()],
                "status": if i % 5 == 0 { "refunded" } else { "paid" },
                "lines": (0..3).map(|j| json!({"sku": format!("sku-{}", (i * 7 + j) % 13), "qty": (i + j) % 4 + 1, "price": 9.99 + j as f64})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "orders": orders })
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.0} µs") } else { format!("{:.2} ms", us / 1000.0) }
}

struct Script {
    name: &'static str,
    code: String,
    input: Value,
}

async fn in_process(sb: &Sandbox, s: &Script, n: usize) -> Vec<Duration> {
    let exec = Execution {
        id: uuid::Uuid::now_v7(),
        code: s.code.clone(),
        language: memory_mcp::sandbox::Language::JavaScript,
        context: json!({"task": "bench", "input": s.input}),
        limits: *sb.limits(),
    };
    for _ in 0..50 {
        check(&sb.execute(exec.clone()).await);
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = sb.execute(exec.clone()).await;
        times.push(t.elapsed());
        check(&r);
    }
    times.sort();
    times
}

fn check(r: &memory_mcp::sandbox::ExecutionResult) {
    let v = serde_json::to_value(r).expect("serialisable");
    assert_eq!(v["status"], "success", "{v}");
}

async fn throughput(sb: Arc<Sandbox>, s: &Script, concurrency: usize, total: usize) -> f64 {
    let exec = Execution {
        id: uuid::Uuid::now_v7(),
        code: s.code.clone(),
        language: memory_mcp::sandbox::Language::JavaScript,
        context: json!({"task": "bench", "input": s.input}),
        limits: *sb.limits(),
    };
    let t = Instant::now();
    let per = total / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let sb = sb.clone();
        let exec = exec.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                check(&sb.execute(exec.clone()).await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (per * concurrency) as f64 / t.elapsed().as_secs_f64()
}

fn server_command(cache: &std::path::Path, data: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_memory-mcp"));
    cmd.arg("--data-dir").arg(data).arg("--cache-dir").arg(cache).env("MEMORY_MCP_LOG", "warn").stderr(Stdio::null());
    cmd
}

async fn stdio_round_trips(cache: &std::path::Path, s: &Script, n: usize) -> Vec<Duration> {
    let data = tempfile::tempdir().expect("tempdir");
    let client = ().serve(TokioChildProcess::new(server_command(cache, data.path())).expect("spawn")).await.expect("init");
    let args = json!({"code": s.code, "context": {"task": "bench", "input": s.input}});
    let Value::Object(map) = args else { unreachable!() };
    let call = || client.call_tool(CallToolRequestParams::new("execute_agent_code").with_arguments(map.clone()));
    for _ in 0..50 {
        call().await.expect("warm-up call");
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = call().await.expect("call");
        times.push(t.elapsed());
        assert_eq!(r.structured_content.as_ref().map(|v| v["status"].clone()), Some(json!("success")));
    }
    let _ = client.cancel().await;
    times.sort();
    times
}

/// Peak RSS (VmHWM) of the server after 1,000 executions in flight at once.
async fn peak_rss_1000(cache: &std::path::Path) -> u64 {
    let data = tempfile::tempdir().expect("tempdir");
    let transport = TokioChildProcess::new(server_command(cache, data.path())).expect("spawn");
    let pid = transport.id().expect("pid");
    let client = Arc::new(().serve(transport).await.expect("init"));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let args = json!({"code": "const a = []; for (let k = 0; k < 1000; k++) a.push({k}); return a.length + context.input", "context": {"input": i}});
            let Value::Object(map) = args else { unreachable!() };
            client.call_tool(CallToolRequestParams::new("execute_agent_code").with_arguments(map)).await.expect("call")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// The seed's approach: a fresh `node` process per execution.
fn node_per_execution(s: &Script, n: usize) -> Option<Vec<Duration>> {
    let program = format!(
        "const context = {{task: 'bench', input: JSON.parse(process.argv[1])}};\n(async () => {{ {} \n}})().then(r => process.stdout.write(JSON.stringify(r)));",
        s.code
    );
    let input = s.input.to_string();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = std::process::Command::new("node").arg("-e").arg(&program).arg(&input).output().ok()?;
        times.push(t.elapsed());
        if !out.status.success() {
            eprintln!("node failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
    }
    times.sort();
    Some(times)
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let n = if quick { 300 } else { 3000 };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let cache_dir = tempfile::tempdir()?;
        if std::env::var_os("BENCH_PING_ONLY").is_some() {
            ping_under_load::report(cache_dir.path()).await;
            return Ok(());
        }
        let config = SandboxConfig {
            limits: Profile::Default.limits(),
            max_concurrency: 20,
            max_queued: 1024,
            policy: CompiledPolicy::deny_all(),
            dispatcher: Arc::new(NoServers),
            grants: Grants::TOOLS,
        };
        let cache = ArtifactCache::new(cache_dir.path());
        let sandbox = Arc::new(Sandbox::load(config, &cache, memory_mcp::components::JS_RUNTIME, Arc::new(Metrics::new())).await?);
        let cold = sandbox.load_report().millis;

        let scripts = [
            Script { name: "trivial", code: TRIVIAL.into(), input: Value::Null },
            Script { name: "json-transform (3 KB)", code: json_transform(), input: orders() },
        ];
        println!("| script | metric | memory-mcp | node per execution | speed-up |");
        println!("|---|---|---|---|---|");
        for s in &scripts {
            let ip = in_process(&sandbox, s, n).await;
            let rt_ = stdio_round_trips(cache_dir.path(), s, n / 3).await;
            let node = node_per_execution(s, if quick { 5 } else { 20 });
            let node_p50 = node.as_ref().map(|t| pct(t, 0.5));
            let speedup = |d: Duration| node_p50.map_or("n/a".into(), |b| format!("{:.0}×", b.as_secs_f64() / d.as_secs_f64()));
            let node_s = node_p50.map_or("node not found".into(), fmt);
            println!("| {} ({} bytes) | in-process p50 / p99 | {} / {} | {} | {} |", s.name, s.code.len(), fmt(pct(&ip, 0.5)), fmt(pct(&ip, 0.99)), node_s, speedup(pct(&ip, 0.5)));
            println!("| {} | MCP stdio round trip p50 / p99 | {} / {} | | {} |", s.name, fmt(pct(&rt_, 0.5)), fmt(pct(&rt_, 0.99)), speedup(pct(&rt_, 0.5)));
            for c in [1, 2, 20] {
                let tput = throughput(sandbox.clone(), s, c, n).await;
                println!("| {} | throughput, concurrency {c} | {tput:.0} exec/s | | |", s.name);
            }
        }
        let rss = peak_rss_1000(cache_dir.path()).await;
        println!("| 1,000 concurrent executions over stdio | server peak RSS | {:.1} MiB | | |", rss as f64 / 1024.0);
        println!("| runtime load | snapshot + compile (cold) / cache hit | {cold} ms / see `warm` | | |");
        println!();
        ping_under_load::report(cache_dir.path()).await;
        Ok(())
    })
}
