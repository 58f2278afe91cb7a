//! What every MCP client sees, against the real binary over stdio
//! (issue 18): each tool has a title, annotations and an output schema;
//! every schema is portable and compiles under a strict Draft 2020-12
//! validator; every tool's real output validates against its output
//! schema; a failed script is an `isError` result that keeps its
//! structured result; the default `tools/list` is small (o200k_base
//! tokens) while every capability stays reachable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::collections::BTreeSet;

use common::upstream::{config, policy};
use common::{Server, ok, spawn_in};
use memory_mcp::mcp::portability_problems;
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Value, json};

/// Most tokens the default `tools/list` may cost (no plugins installed).
const TOOLS_LIST_BUDGET: usize = 2_500;

async fn serve(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config(dir.path(), &policy(&["memory.*"], "")).display().to_string();
    let mut args = vec!["--config", path.as_str()];
    args.extend_from_slice(extra);
    spawn_in(dir, &args).await
}

/// A strict Draft 2020-12 validator: formats are checked and unknown ones
/// are errors, and the schema itself is checked against the meta-schema.
fn strict(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

fn output_schema(tool: &Tool) -> Value {
    Value::Object((*tool.output_schema.clone().unwrap_or_else(|| panic!("{} has no outputSchema", tool.name))).clone())
}

/// Checks `r` against `tool`'s output schema; returns the structured result.
fn validated(tool: &Tool, r: &CallToolResult) -> Value {
    let out = r.structured_content.clone().unwrap_or_else(|| panic!("{}: no structuredContent", tool.name));
    let v = strict(&output_schema(tool)).expect("compiles");
    let errors: Vec<String> = v.iter_errors(&out).map(|e| format!("{e} at {:?}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{}: output does not match its outputSchema: {errors:?}\n{out:#}", tool.name);
    out
}

#[tokio::test]
async fn every_tool_has_metadata_and_strict_portable_schemas() {
    let s = serve(&["--list-all-tools"]).await;
    let tools = s.client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), memory_mcp::mcp::Server::tool_names().len());
    for tool in &tools {
        assert!(tool.title.as_deref().is_some_and(|t| !t.is_empty()), "{} has no title", tool.name);
        let a = tool.annotations.as_ref().unwrap_or_else(|| panic!("{} has no annotations", tool.name));
        for (hint, v) in [("readOnly", a.read_only_hint), ("destructive", a.destructive_hint), ("idempotent", a.idempotent_hint), ("openWorld", a.open_world_hint)] {
            assert!(v.is_some(), "{}: no {hint}Hint", tool.name);
        }
        let input = Value::Object((*tool.input_schema).clone());
        for (what, schema) in [("inputSchema", input), ("outputSchema", output_schema(tool))] {
            assert_eq!(portability_problems(&schema), Vec::<String>::new(), "{} {what}: {schema:#}", tool.name);
            strict(&schema).unwrap_or_else(|e| panic!("{} {what} does not compile strictly: {e}", tool.name));
            assert_eq!(schema["type"], "object", "{} {what}", tool.name);
        }
    }
    let by_name = |n: &str| tools.iter().find(|t| t.name == n).and_then(|t| t.annotations.clone()).expect(n);
    assert_eq!(by_name("health_check").read_only_hint, Some(true));
    assert_eq!(by_name("delete_episode").read_only_hint, Some(false));
    assert_eq!(by_name("delete_episode").destructive_hint, Some(true));
    assert_eq!(by_name("create_episode").destructive_hint, Some(false));
    // Typed where a string used to slip through, and the real bounds.
    let schema_of = |n: &str| Value::Object((*tools.iter().find(|t| t.name == n).expect(n).input_schema).clone());
    assert_eq!(schema_of("execute_agent_code")["properties"]["context"]["properties"]["input"]["type"], "object");
    assert_eq!(schema_of("save_plugin")["properties"]["input_schema"]["type"], "object");
    assert_eq!(schema_of("query_memory")["properties"]["limit"]["minimum"], 1);
    let r = s.call("execute_agent_code", json!({"code": "return 1", "context": {"input": "{\"a\":1}"}})).await;
    assert_eq!(r.is_error, Some(true), "a string input is refused: {r:?}");
}

#[tokio::test]
async fn every_tool_output_validates_against_its_output_schema() {
    let s = serve(&["--list-all-tools"]).await;
    let tools = s.client.list_all_tools().await.expect("tools/list");
    let tool = |n: &str| tools.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n} is not listed")).clone();
    let mut called = BTreeSet::new();
    let mut call = async |name: &str, args: Value| -> Value {
        let r = s.call(name, args.clone()).await;
        assert_ne!(r.is_error, Some(true), "{name}({args}) failed: {}", common::text(&r));
        called.insert(name.to_string());
        validated(&tool(name), &r)
    };

    let ep = call("create_episode", json!({"task_description": "fix the flaky login test", "domain": "web-api", "task_type": "debugging", "context": {"language": "rust", "tags": ["auth"]}})).await;
    let id = ep["episode_id"].as_str().expect("id").to_string();
    for n in 1..=3 {
        call("add_episode_step", json!({"episode_id": id, "step_number": n, "tool": "cargo", "action": format!("run tests {n}"), "result": {"type": "success", "output": "ok"}, "latency_ms": 12})).await;
    }
    call("complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "fixed"}})).await;
    call("get_episode", json!({"episode_id": id})).await;
    call("get_episode_timeline", json!({"episode_id": id})).await;
    call("update_episode", json!({"episode_id": id, "tags": ["auth", "flaky"]})).await;
    call("bulk_episodes", json!({"episode_ids": [id, "not-an-id"]})).await;
    call("query_memory", json!({"query": "login test"})).await;
    call("quality_metrics", json!({"include_trends": true})).await;
    call("query_semantic_memory", json!({"query": "login test", "similarity_threshold": 0.0})).await;
    call("analyze_patterns", json!({"task_type": "debugging", "min_success_rate": 0.0})).await;
    call("advanced_pattern_analysis", json!({"analysis_type": "comprehensive", "time_series_data": {"a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], "b": [2.0, 4.0, 5.0, 9.0, 10.0, 12.0, 15.0, 16.0]}})).await;
    call("search_patterns", json!({"query": "cargo tests", "domain": "web-api"})).await;
    let recs = call("recommend_patterns", json!({"task_description": "fix a flaky test", "domain": "web-api"})).await;
    let pattern = recs["recommendations"].as_array().and_then(|r| r.first()).and_then(|p| p["pattern_id"].as_str().map(String::from));
    if let Some(pattern) = pattern {
        call("record_pattern_feedback", json!({"pattern_id": pattern, "applied": true, "outcome": "success"})).await;
    }
    call("test_embeddings", json!({})).await;
    call("configure_embeddings", json!({"provider": "local"})).await;
    call("search_tools", json!({"query": "episode"})).await;
    call("describe_tools", json!({"names": ["memory.get_episode", "memory.nope"]})).await;
    let ran = call("execute_agent_code", json!({"code": "await tools.memory.health_check({}); return context.input.n * 2", "context": {"input": {"n": 21}}})).await;
    assert_eq!(ran["output"], 42);
    call("get_tool_audit", json!({})).await;
    call("health_check", json!({})).await;
    call("get_metrics", json!({})).await;
    call("save_plugin", json!({"execution_id": ran["execution_id"], "name": "doubler", "description": "Doubles n.", "input_schema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}})).await;
    call("list_plugins", json!({})).await;
    // The plugin's own tool: its metadata and its output.
    let listed = s.client.list_all_tools().await.expect("tools/list");
    let plugin = listed.iter().find(|t| t.name == "doubler").expect("the plugin is listed").clone();
    let a = plugin.annotations.clone().expect("annotations");
    assert_eq!(a.read_only_hint, Some(true), "a plugin granted only memory.health_check reads only: {a:?}");
    assert!(plugin.title.is_some());
    let r = s.call("doubler", json!({"n": 4})).await;
    assert_ne!(r.is_error, Some(true), "{}", common::text(&r));
    assert_eq!(validated(&plugin, &r)["output"], 8);
    // Its declared input_schema is enforced, with the failing path.
    let bad = s.call("doubler", json!({"n": "nope"})).await;
    assert_eq!(bad.is_error, Some(true), "{bad:?}");
    assert!(common::text(&bad).contains("/n"), "{}", common::text(&bad));
    call("remove_plugin", json!({"name": "doubler"})).await;
    call("delete_episode", json!({"episode_id": id, "confirm": true})).await;

    let mut missing: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).filter(|n| !called.contains(*n)).collect();
    missing.retain(|n| *n != "record_pattern_feedback" || called.contains("recommend_patterns"));
    assert!(missing.is_empty() || missing == ["record_pattern_feedback"], "not called: {missing:?}");
}

#[tokio::test]
async fn failed_scripts_are_is_error_and_keep_their_structured_result() {
    let s = serve(&[]).await;
    let tools = s.client.list_all_tools().await.expect("tools/list");
    let exec = tools.iter().find(|t| t.name == "execute_agent_code").expect("listed").clone();
    for (code, status) in [
        ("throw new Error('no')", "error"),
        ("const a = ;", "error"),
        ("while (true) {}", "timeout"),
        ("let a = []; while (true) a.push('x'.repeat(1e6));", "resource_limit"),
    ] {
        let timeout_ms = if status == "timeout" { 500 } else { 5000 };
        let r = s.call("execute_agent_code", json!({"code": code, "timeout_ms": timeout_ms})).await;
        assert_eq!(r.is_error, Some(true), "{code}: {r:?}");
        let out = validated(&exec, &r);
        assert_eq!(out["status"], status, "{code}: {out}");
    }
    let r = s.call("execute_agent_code", json!({"code": "return 1"})).await;
    assert_ne!(r.is_error, Some(true));
}

#[tokio::test]
async fn the_default_list_is_small_and_every_capability_stays_reachable() {
    let s = serve(&[]).await;
    let tools = s.client.list_all_tools().await.expect("tools/list");
    let listed: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for core in ["execute_agent_code", "search_tools", "describe_tools", "create_episode", "add_episode_step", "complete_episode", "query_memory"] {
        assert!(listed.contains(core), "{core} is not listed: {listed:?}");
    }
    let text = serde_json::to_string(&json!({ "tools": tools })).expect("json");
    let bpe = tiktoken_rs::o200k_base().expect("o200k_base");
    let tokens = bpe.encode_with_special_tokens(&text).len();
    eprintln!("default tools/list: {} tools, {tokens} tokens (o200k_base)", tools.len());
    assert!(tokens <= TOOLS_LIST_BUDGET, "the default tools/list costs {tokens} tokens");

    // Each unlisted tool: callable by name, and found by search_tools
    // when code may call it.
    let all = memory_mcp::mcp::Server::tool_names();
    let found = ok(&s, "search_tools", json!({"query": "", "limit": 100})).await;
    let searchable: BTreeSet<String> =
        found["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str().map(String::from)).collect();
    for name in all.iter().filter(|n| !listed.contains(*n)) {
        let callable_from_code = memory_mcp::gateway::sandbox_callable(name);
        let operator_only = memory_mcp::gateway::OPERATOR_ONLY.contains(&name.as_str());
        assert!(callable_from_code || operator_only, "{name}");
        if callable_from_code {
            assert!(searchable.contains(&format!("memory.{name}")), "memory.{name} is not found by search_tools");
        }
    }
    let hits = ok(&s, "search_tools", json!({"query": "learned patterns analysis"})).await;
    assert!(hits.to_string().contains("memory.analyze_patterns"), "{hits}");
    // Called from code, and by name over MCP though unlisted.
    let r = s.exec("return (await tools.memory.analyze_patterns({task_type: 'debugging'})).total_matching").await;
    assert_eq!(r["status"], "success", "{r}");
    ok(&s, "get_metrics", json!({})).await;
}
