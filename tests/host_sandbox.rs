//! The sandbox in-process, without MCP: capabilities are linked only as
//! granted, and the limits hold at the host API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::sync::Arc;
use std::time::Duration;

use memory_mcp::metrics::Metrics;
use memory_mcp::wasm::ArtifactCache;
use memory_mcp::sandbox::{CompiledPolicy, Execution, Grants, NoServers, Profile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn sandbox(grants: Grants, max_concurrency: usize) -> Sandbox {
    let config = SandboxConfig {
        limits: Profile::Default.limits(),
        max_concurrency,
        max_queued: 1024,
        policy: CompiledPolicy::deny_all(),
        dispatcher: Arc::new(NoServers),
        grants,
    };
    let cache = ArtifactCache::new(common::shared_cache());
    Sandbox::load(config, &cache, memory_mcp::components::JS_RUNTIME, Arc::new(Metrics::new()))
        .await
        .expect("runtime loads")
}

async fn run(sb: &Sandbox, code: &str) -> Value {
    let r = sb
        .execute(Execution {
            id: uuid::Uuid::now_v7(),
            code: code.into(),
            language: memory_mcp::sandbox::Language::JavaScript,
            context: json!({"task": "t", "input": null}),
            limits: *sb.limits(),
        })
        .await;
    serde_json::to_value(r).unwrap()
}

#[tokio::test]
async fn an_ungranted_interface_is_a_security_violation() {
    let sb = sandbox(Grants::NONE, 2).await;
    let r = run(&sb, "try { await tools.memory.query_memory({}) } catch (e) { return 'caught' }").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("memory-mcp:tool-call/tools") && reason.contains("not granted"), "{reason}");
    assert_eq!(run(&sb, "return 1").await["output"], 1);
}

#[tokio::test]
async fn a_granted_interface_still_passes_the_policy() {
    let sb = sandbox(Grants::TOOLS, 2).await;
    let r = run(&sb, "await tools.everything.echo({message: 'hi'})").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("not allowed by the sandbox policy"), "{r}");
}

#[tokio::test]
async fn excess_executions_wait_their_turn() {
    let sb = Arc::new(sandbox(Grants::default(), 1).await);
    let slow = {
        let sb = sb.clone();
        tokio::spawn(async move { run(&sb, "const t = Date.now(); while (Date.now() - t < 300) {} return 'slow'").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sb.occupancy(), (1, 1));
    let fast = run(&sb, "return 'fast'").await;
    assert_eq!(fast["output"], "fast");
    assert_eq!(slow.await.unwrap()["output"], "slow");
    assert_eq!(sb.occupancy(), (0, 1));
}

#[tokio::test]
async fn timeouts_are_wall_clock_even_when_the_guest_is_idle_in_a_loop_of_awaits() {
    let sb = sandbox(Grants::default(), 2).await;
    let r = sb
        .execute(Execution {
            id: uuid::Uuid::now_v7(),
            code: "for (;;) { await Promise.resolve() }".into(),
            language: memory_mcp::sandbox::Language::JavaScript,
            context: json!({}),
            limits: sb.limits().narrowed(Some(150), None).unwrap(),
        })
        .await;
    let r = serde_json::to_value(r).unwrap();
    assert_eq!(r["status"], "timeout");
    assert!(r["elapsed_ms"].as_f64().unwrap() < 1500.0, "{r}");
}
