//! Tool calls from code mode: `cargo bench -p memory-mcp --bench tools`
//! (or `scripts/bench.sh`). Prints the README's table. Needs node and the
//! npm servers (scripts/npm-servers.sh).
//!
//! - A `memory` tool called from JS, against the same tool called through
//!   the gateway directly (its own work: parameter parsing, the handler,
//!   the result): the difference is what the sandbox adds per call
//!   (JSON across the wasm boundary, the policy, the audit write).
//! - An upstream stdio tool (server-everything `echo`) called from JS,
//!   against a direct rmcp client call to another server-everything
//!   process (the upstream's own latency).
//! - 10 calls in one script against 10 MCP round trips from a client, over
//!   stdio with the real binary.
//!
//! Per-call cost in JS is (a script making N calls − the same script
//! making none) / N, so the execution's fixed cost is not counted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "../../tests/common/upstream.rs"]
mod upstream;
#[path = "common/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use memory_mcp::sandbox::{Execution, ExecutionResult, Language, Sandbox, ToolDispatcher, ToolPolicy};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn policy() -> ToolPolicy {
    ToolPolicy {
        allow: vec!["memory.*".into(), "everything.echo".into()],
        max_calls_per_execution: 10_000,
        rate_limit_per_minute: u32::MAX,
        ..Default::default()
    }
}

fn servers() -> std::collections::BTreeMap<String, memory_mcp::gateway::UpstreamConfig> {
    let mut file: toml::Table = toml::from_str(&upstream::everything("everything", None)).expect("toml");
    let table = file.remove("servers").expect("servers");
    table.try_into().expect("servers table")
}

/// Median per-call cost inside JS of `call` (an expression awaiting one
/// tool call), from scripts making `n` calls and none.
async fn per_call_in_js(sb: &Sandbox, call: &str, input: &Value, n: usize, rounds: usize) -> Duration {
    let script = |k: usize| format!("for (let i = 0; i < {k}; i++) {{ {call}; }} return 1;");
    let run = |code: String| Execution {
        id: uuid::Uuid::now_v7(),
        code,
        language: Language::JavaScript,
        context: json!({"task": "bench", "input": input}),
        limits: *sb.limits(),
    };
    let mut per = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let r = sb.execute(run(script(0))).await;
        let empty = t.elapsed();
        let t = Instant::now();
        let r2 = sb.execute(run(script(n))).await;
        let full = t.elapsed();
        assert!(matches!(r, ExecutionResult::Success { .. }), "{r:?}");
        assert!(matches!(r2, ExecutionResult::Success { .. }), "{r2:?}");
        per.push(full.saturating_sub(empty) / n as u32);
    }
    median(per)
}

async fn spawn_everything() -> anyhow::Result<Client> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(upstream::npm_server("server-everything")).arg("stdio");
    let (t, _) = TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn()?;
    Ok(().serve(t).await?)
}

async fn call(c: &Client, tool: &str, args: Value) -> Value {
    let Value::Object(m) = args else { panic!("object") };
    let r = c.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(m)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    r.structured_content.unwrap_or(Value::Null)
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (n, rounds) = if quick { (50, 9) } else { (200, 31) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        // Every component compiled first: on a fresh cache the servers
        // below would compile them in the background while calls are timed.
        let warmed = in_process::warmed_cache(in_process::Options::new(policy(), servers())).await?;
        let cache = warmed.path().join("cache");
        let p = in_process::start_with(in_process::Options { cache: Some(cache.clone()), ..in_process::Options::new(policy(), servers()) }).await?;
        let sb = &p.sandbox;

        // A memory tool: get_episode on a 5-step episode.
        let dispatch = |tool: &'static str, args: Value| {
            let g = p.gateway.clone();
            async move { g.call("memory", tool, args).await.expect("memory tool") }
        };
        let created = dispatch(
            "create_episode",
            json!({"task_description": "bench episode", "domain": "bench", "task_type": "testing"}),
        )
        .await;
        let id = created["episode_id"].clone();
        for k in 1..=5 {
            dispatch("add_episode_step", json!({"episode_id": id, "step_number": k, "tool": "t", "action": "a",
                "result": {"type": "success", "output": "fine"}}))
            .await;
        }
        // The tool's own cost, through the gateway without the sandbox, and
        // the size of the JSON its result crosses into JS as.
        let own_cost = |tool: &'static str, args: Value| {
            let g = p.gateway.clone();
            async move {
                let mut own = Vec::new();
                let mut bytes = 0;
                for _ in 0..(n * 5) {
                    let t = Instant::now();
                    let r = g.call("memory", tool, args.clone()).await.expect("memory tool");
                    own.push(t.elapsed());
                    bytes = r.to_string().len();
                }
                (median(own), bytes)
            }
        };
        let (own, own_bytes) = own_cost("get_episode", json!({"episode_id": id})).await;
        let js = per_call_in_js(sb, "await tools.memory.get_episode({ episode_id: context.input.id })", &json!({"id": id}), n, rounds).await;
        let (own_q, q_bytes) = own_cost("query_memory", json!({"query": "zzz", "limit": 1})).await;
        let js_q = per_call_in_js(sb, "await tools.memory.query_memory({ query: 'zzz', limit: 1 })", &Value::Null, n, rounds).await;

        // An upstream stdio tool: server-everything echo.
        let direct = spawn_everything().await?;
        let _ = call(&direct, "echo", json!({"message": "warm"})).await;
        let mut up = Vec::new();
        for _ in 0..(n * 2) {
            let t = Instant::now();
            let _ = call(&direct, "echo", json!({"message": "hello"})).await;
            up.push(t.elapsed());
        }
        let up = median(up);
        let _ = p.gateway.call("everything", "echo", json!({"message": "connect"})).await;
        let js_up = per_call_in_js(sb, "await tools.everything.echo({ message: 'hello' })", &Value::Null, n / 2, rounds).await;

        println!("| tool call from JS | result size | the tool's own cost | per call from JS | added by the sandbox | target |");
        println!("|---|---|---|---|---|---|");
        println!("| `memory.query_memory` (no hits, in-process) | {q_bytes} B | {} | {} | **{}** | ≤ 50 µs |", us(own_q), us(js_q), us(js_q.saturating_sub(own_q)));
        println!("| `memory.get_episode` (5 steps, in-process) | {own_bytes} B | {} | {} | **{}** | ≤ 50 µs |", us(own), us(js), us(js.saturating_sub(own)));
        println!("| `everything.echo` (npm server, stdio) | | {} | {} | **{}** | ≤ 1 ms |", us(up), us(js_up), us(js_up.saturating_sub(up)));

        // 10 calls: one script against 10 client round trips, over stdio.
        let cfg_dir = tempfile::tempdir()?;
        let cfg = upstream::config(
            cfg_dir.path(),
            &format!("{}{}", upstream::everything("everything", None), upstream::policy(&["memory.*", "everything.echo"], "rate_limit_per_minute = 1000000\n")),
        );
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_memory-mcp"));
        cmd.arg("--data-dir").arg(cfg_dir.path()).arg("--cache-dir").arg(&cache).arg("--config").arg(&cfg).env("MEMORY_MCP_LOG", "error");
        let (t, _) = TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn()?;
        let mcp = ().serve(t).await?;
        let made = call(&mcp, "create_episode", json!({"task_description": "bench", "domain": "bench", "task_type": "testing"})).await;
        let eid = made["episode_id"].clone();
        let ten_memory = "for (let i = 0; i < 10; i++) await tools.memory.get_episode({ episode_id: context.input.id }); return 1";
        let ten_echo = "for (let i = 0; i < 10; i++) await tools.everything.echo({ message: 'hello' }); return 1";
        let script = |code: &str, input: Value| json!({"code": code, "context": {"input": input}});
        let _ = call(&mcp, "execute_agent_code", script(ten_echo, Value::Null)).await;
        let reps = if quick { 20 } else { 100 };
        let (mut rt_mem, mut sc_mem, mut rt_echo, mut sc_echo) = (vec![], vec![], vec![], vec![]);
        for _ in 0..reps {
            let t = Instant::now();
            for _ in 0..10 {
                call(&mcp, "get_episode", json!({"episode_id": eid})).await;
            }
            rt_mem.push(t.elapsed());
            let t = Instant::now();
            let r = call(&mcp, "execute_agent_code", script(ten_memory, json!({"id": eid}))).await;
            sc_mem.push(t.elapsed());
            assert_eq!(r["status"], "success", "{r}");
            let t = Instant::now();
            for _ in 0..10 {
                call(&direct, "echo", json!({"message": "hello"})).await;
            }
            rt_echo.push(t.elapsed());
            let t = Instant::now();
            let r = call(&mcp, "execute_agent_code", script(ten_echo, Value::Null)).await;
            sc_echo.push(t.elapsed());
            assert_eq!(r["status"], "success", "{r}");
        }
        println!();
        println!("| 10 tool calls | 10 MCP round trips from the client | 1 `execute_agent_code` making 10 calls | |");
        println!("|---|---|---|---|");
        let (a, b) = (median(rt_mem), median(sc_mem));
        println!("| `memory.get_episode` | {} | {} | {:.1}× |", ms(a), ms(b), a.as_secs_f64() / b.as_secs_f64());
        let (a, b) = (median(rt_echo), median(sc_echo));
        println!("| `everything.echo` (client → server-everything directly) | {} | {} | {:.1}× |", ms(a), ms(b), a.as_secs_f64() / b.as_secs_f64());
        let _ = mcp.cancel().await;
        let _ = direct.cancel().await;
        Ok(())
    })
}
