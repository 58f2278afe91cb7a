//! The server in-process: built by the composition root `main` uses
//! (`App::build`), served over a `tokio::io::duplex` pipe and driven by
//! rmcp's own client, as rmcp's examples do; beside the stdio end-to-end
//! tests, which spawn the binary. The harness is the benches'
//! (`host/benches/common/in_process.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "../host/benches/common/in_process.rs"]
mod in_process;

use std::time::Duration;

use memory_mcp::sandbox::ToolPolicy;
use rmcp::model::CallToolRequestParams;
use serde_json::{Map, Value, json};

/// Generous: a loaded 2-core machine may compile the runtime first.
const CALL: Duration = Duration::from_secs(120);

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

async fn call(p: &in_process::InProcess, tool: &str, arguments: Value) -> Value {
    let request = CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments));
    let result = tokio::time::timeout(CALL, p.client.call_tool(request))
        .await
        .unwrap_or_else(|_| panic!("{tool} answered within {CALL:?}"))
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    let shown = format!("{result:?}");
    result.structured_content.unwrap_or_else(|| panic!("{tool} has structured content: {shown}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_mcp_over_an_in_process_pipe() {
    let policy = ToolPolicy { allow: vec!["memory.query_memory".into()], ..Default::default() };
    let p = in_process::start(policy, Default::default()).await.expect("the app builds and serves");

    // initialize: the client learned who it talks to.
    let info = p.client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("memory-mcp"), "{info:?}");

    // tools/list: the core tools.
    let tools = tokio::time::timeout(CALL, p.client.list_all_tools()).await.expect("tools/list answered").expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for tool in ["execute_agent_code", "create_episode", "query_memory"] {
        assert!(names.contains(&tool), "{tool} is listed: {names:?}");
    }

    // A memory round trip.
    let created = call(
        &p,
        "create_episode",
        json!({"task_description": "rotate the signing keys", "domain": "ops", "task_type": "debugging"}),
    )
    .await;
    let id = created["episode_id"].as_str().expect("an episode id").to_string();
    let got = call(&p, "get_episode", json!({"episode_id": id})).await;
    assert_eq!(got["task_description"], "rotate the signing keys");

    // Code calls this server's own tools through the gateway, in-process.
    let ran = call(
        &p,
        "execute_agent_code",
        json!({"code": "const r = await tools.memory.query_memory({ query: 'signing keys' }); return r.results.map(e => e.episode_id);"}),
    )
    .await;
    assert_eq!(ran["status"], "success", "{ran}");
    let found = ran["output"].as_array().unwrap_or_else(|| panic!("a list of ids: {ran}"));
    assert!(found.iter().any(|v| v.as_str() == Some(id.as_str())), "query_memory from code finds {id}: {ran}");
}
