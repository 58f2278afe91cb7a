//! Plugins: `cargo bench -p memory-mcp --bench plugins` (or
//! `scripts/bench.sh`). Prints the README's tables.
//!
//! - Call latency over MCP (the server in-process, an rmcp client over an
//!   in-memory pipe): a plugin's tool against `execute_agent_code` running
//!   the same code on the same input, interleaved, p50 and p95. The plugin
//!   pays no compile (its bytecode is in the snapshot) and, for
//!   TypeScript, no type stripping.
//! - Build time: `Builder::build` (snapshot of the template with the
//!   script compiled in), median of 5, and the one-off Cranelift compile
//!   of the result (cached after).
//! - Size of each plugin, against the templates it is built from.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "common/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use memory_mcp::plugins::{BuildRequest, Builder, PluginPolicy};
use memory_mcp::sandbox::Language;
use memory_mcp::wasm::ArtifactCache;
use memory_mcp::sandbox::ToolPolicy;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).expect(path)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Case {
    name: &'static str,
    label: &'static str,
    source: String,
    language: Language,
    allow: Vec<String>,
    input: Value,
}

async fn call(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>, tool: &str, args: Value) -> Duration {
    let Value::Object(map) = args else { panic!("object") };
    let t = Instant::now();
    let r = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)).await.expect("call");
    let took = t.elapsed();
    let s = r.structured_content.unwrap_or(Value::Null);
    assert_eq!(s["status"], "success", "{tool}: {s}");
    took
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (n, builds) = if quick { (60, 2) } else { (300, 5) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let policy = ToolPolicy { allow: vec!["memory.*".into()], max_calls_per_execution: 10_000, rate_limit_per_minute: u32::MAX, ..Default::default() };
        let p = in_process::start(policy, Default::default()).await?;
        for k in 0..20 {
            let args = json!({"task_description": format!("fix the flaky upload test {k}"), "domain": "ci", "task_type": "debugging"});
            call_ok(&p.client, "create_episode", args).await;
        }
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(25);
        let cases = [
            Case { name: "double", label: "`return context.input.n * 2` (JS)", source: "return context.input.n * 2;".into(), language: Language::JavaScript, allow: vec![], input: json!({"n": 21}) },
            Case { name: "word_stats", label: "word-stats example (TS, 1.1 KB input)", source: repo_file("plugins/word-stats/word-stats.ts"), language: Language::TypeScript, allow: vec![], input: json!({"text": text, "top": 3}) },
            Case { name: "similar_episodes", label: "similar-episodes example (JS, 1 memory tool call)", source: repo_file("plugins/similar-episodes/similar-episodes.js"), language: Language::JavaScript, allow: vec!["memory.query_memory".into()], input: json!({"task": "flaky upload", "limit": 5}) },
        ];

        // The templates and the stripper are prepared once per server (at
        // start, in the background); builds are timed after that.
        let t = Instant::now();
        Builder::in_sandbox(&p.sandbox).warm().await?;
        p.sandbox.typescript().await.map_err(anyhow::Error::msg)?;
        let prepared = t.elapsed();

        // Build time and size.
        println!("| build | median of {builds} | then precompile (once, cached) | plugin size |");
        println!("|---|---|---|---|");
        for c in &cases {
            let mut times = Vec::new();
            let mut built = None;
            for _ in 0..builds {
                let req = BuildRequest {
                    name: c.name.into(),
                    description: c.label.into(),
                    source: c.source.clone(),
                    language: c.language,
                    input_schema: None,
                    // No rate limit in the way of the measurement.
                    policy: PluginPolicy {
                        tools: ToolPolicy { allow: c.allow.clone(), rate_limit_per_minute: u32::MAX, ..Default::default() },
                        ..Default::default()
                    },
                };
                let t = Instant::now();
                let builder = Builder::in_sandbox(&p.sandbox);
                let deadline = Instant::now() + builder.limits_for(&req.policy).timeout;
                built = Some(builder.build(req, deadline, &|_| ()).await?);
                times.push(t.elapsed());
            }
            let built = built.expect("built");
            let cold = ArtifactCache::new(p.dir.path().join(format!("cold-{}", c.name)));
            let t = Instant::now();
            cold.load(p.sandbox.engine(), c.name, &built.wasm, None).await?;
            let precompile = t.elapsed();
            p.plugins.dir().write(&built)?;
            // The server's watcher loads (and compiles) a written plugin in
            // the background; load it now, so that compile does not overlap
            // the next case's timed precompile.
            p.plugins.sync(&p.sandbox).await;
            println!(
                "| {} ({}) | {} | {} | {:.2} MB |",
                c.label,
                built.manifest.world.as_str(),
                ms(pct(&mut times, 0.5)),
                ms(precompile),
                built.wasm.len() as f64 / 1e6
            );
        }
        println!("\nThe templates and the TypeScript stripper were prepared once, before the builds, in {}.", ms(prepared));
        let mb = |b: &[u8]| format!("{:.2} MB", b.len() as f64 / 1e6);
        println!(
            "\nTemplates: tool-plugin {}, pure-plugin {}; the execute_agent_code runtime {}.\n",
            mb(memory_mcp::components::JS_PLUGIN),
            mb(memory_mcp::components::JS_PLUGIN_PURE),
            mb(memory_mcp::components::JS_RUNTIME)
        );

        p.plugins.sync(&p.sandbox).await;
        println!("| call over MCP ({n} each, interleaved) | plugin p50 | execute_agent_code p50 | plugin p95 | execute_agent_code p95 |");
        println!("|---|---|---|---|---|");
        for c in &cases {
            let lang = match c.language {
                Language::JavaScript => "javascript",
                Language::TypeScript => "typescript",
            };
            let exec = json!({"code": c.source, "language": lang, "context": {"task": c.label, "input": c.input}});
            for _ in 0..20 {
                call(&p.client, c.name, c.input.clone()).await;
                call(&p.client, "execute_agent_code", exec.clone()).await;
            }
            let (mut plugin, mut code) = (Vec::new(), Vec::new());
            for _ in 0..n {
                plugin.push(call(&p.client, c.name, c.input.clone()).await);
                code.push(call(&p.client, "execute_agent_code", exec.clone()).await);
            }
            println!(
                "| {} | {} | {} | {} | {} |",
                c.label,
                ms(pct(&mut plugin, 0.5)),
                ms(pct(&mut code, 0.5)),
                ms(pct(&mut plugin, 0.95)),
                ms(pct(&mut code, 0.95))
            );
        }
        anyhow::Ok(())
    })
}

async fn call_ok(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>, tool: &str, args: Value) {
    let Value::Object(map) = args else { panic!("object") };
    let r = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
}
