//! Plugins saved against `memory-mcp:tool-call@0.1.0` keep loading and
//! behaving as they did, now that new plugins are built on 0.2.0: the real
//! binary over MCP stdio serves two 0.1.0 components from its plugins
//! directory (fixtures `legacy-plugin`, world `tool-plugin`, and
//! `legacy-pure-plugin`, world `pure-plugin`), written there with their
//! manifests as an earlier build left them.
//!
//! A 0.1.0 tool plugin reaches `tools@0.1.0` under its policy and the
//! server's; a refused call is a security violation, whether the host
//! refused it (tool plugin) or the 0.1.0 component reported it in its own
//! words (pure plugin, which has no tools import).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::upstream::{config, policy};
use common::{Server, ok, spawn_in};
use serde_json::{Value, json};

fn component(built: &str) -> Vec<u8> {
    let dir = std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"));
    let p = dir.join(built);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run ./scripts/build-components.sh)", p.display()))
}

fn sum(file: &str, bytes: &[u8]) -> Value {
    json!({"file": file, "bytes": bytes.len(), "blake3": blake3::hash(bytes).to_hex().to_string()})
}

/// Writes plugin `name` into `plugins/tools/` the way a 0.1.0 build saved
/// it: component, policy, source and the manifest, last.
fn install(plugins: &Path, name: &str, built: &str, world: &str, policy: &str) {
    let tools = plugins.join("tools");
    std::fs::create_dir_all(&tools).expect("plugins/tools");
    let wasm = component(built);
    let source = format!("// {name}: the {built} fixture, built against memory-mcp:tool-call@0.1.0\n");
    let files = [(format!("{name}.wasm"), wasm), (format!("{name}.policy.toml"), policy.as_bytes().to_vec()), (format!("{name}.js"), source.into_bytes())];
    for (file, bytes) in &files {
        std::fs::write(tools.join(file), bytes).expect("plugin file");
    }
    let manifest = json!({
        "format": 1,
        "name": name,
        "description": format!("{world} built against tool-call@0.1.0"),
        "input_schema": {"type": "object"},
        "language": "javascript",
        "world": world,
        "wasm": sum(&files[0].0, &files[0].1),
        "policy": sum(&files[1].0, &files[1].1),
        "source": sum(&files[2].0, &files[2].1),
        "built_by": "memory-mcp 0.1.0 (tool-call@0.1.0)",
    });
    std::fs::write(tools.join(format!("{name}.plugin.json")), serde_json::to_string_pretty(&manifest).expect("json")).expect("manifest");
}

async fn wait_listed(s: &Server, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tools = s.client.list_all_tools().await.expect("tools/list");
        if tools.iter().any(|t| t.name == name) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} was never listed: {:?}", tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn plugins_built_against_tool_call_0_1_0_still_run_under_their_policy() {
    let data = tempfile::tempdir().expect("data dir");
    let plugins = data.path().join("plugins");
    install(&plugins, "legacy_tools", "legacy_plugin.wasm", "tool-plugin", "version = 1\n\n[tools]\nallow = [\"memory.query_memory\"]\n");
    install(&plugins, "legacy_pure", "legacy_pure_plugin.wasm", "pure-plugin", "version = 1\n");
    let server_policy = config(data.path(), &policy(&["memory.query_memory", "memory.create_episode"], "")).display().to_string();
    let s = spawn_in(data, &["--config", &server_policy]).await;
    wait_listed(&s, "legacy_tools").await;
    wait_listed(&s, "legacy_pure").await;

    // Input in, output out.
    let r = ok(&s, "legacy_pure", json!({"n": 1})).await;
    assert_eq!((&r["status"], &r["output"]), (&json!("success"), &json!({"n": 1})), "{r}");

    // An allowed call goes through tools@0.1.0 to the real tool.
    let r = ok(&s, "legacy_tools", json!({"server": "memory", "tool": "query_memory", "arguments": {"query": "x"}})).await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["output"]["results"], json!([]), "{r}");

    // Refused by the plugin's policy (the server's allows it): the host's
    // own record of the refusal, and nothing is created.
    let r = s.call("legacy_tools", json!({"server": "memory", "tool": "create_episode", "arguments": {"task_description": "t", "domain": "d"}})).await;
    assert_eq!(r.is_error, Some(true));
    let r = r.structured_content.expect("structured");
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("not allowed by plugin `legacy_tools`'s policy"), "{r}");
    let q = ok(&s, "query_memory", json!({"query": "t"})).await;
    assert_eq!(q["results"], json!([]), "{q}");

    // A 0.1.0 pure plugin reports the refusal itself, as a runtime error
    // named SecurityViolation: still a security violation.
    let r = s.call("legacy_pure", json!({"server": "memory", "tool": "query_memory"})).await;
    assert_eq!(r.is_error, Some(true));
    let r = r.structured_content.expect("structured");
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("grants no tool calls"), "{r}");
}
