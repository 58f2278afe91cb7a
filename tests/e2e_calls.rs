//! Tool calls from code are charged to the execution that makes them, end
//! to end against the real binary over MCP stdio (issue 14, findings 1, 2,
//! 6 and 7): names are bounded data, refusals cost the caller, the audit
//! and usage stay bounded, rate limits are global per tool, and grants
//! derived from an execution are exact names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::upstream::{config, policy};
use common::process::status_kib;
use common::{Server, ok, spawn_in};
use serde_json::{Value, json};

async fn serve(text: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config(dir.path(), text);
    let path = path.display().to_string();
    spawn_in(dir, &["--config", &path]).await
}

fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        };
        total += if meta.is_dir() { dir_bytes(&entry.path()) } else { meta.len() };
    }
    total
}

/// Runs `code` and returns its structured result and how long the reply
/// took.
async fn timed_exec(s: &Server, code: &str) -> (Value, Duration) {
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), s.exec(code)).await.expect("the execution is answered");
    (r, started.elapsed())
}

async fn audit_of(s: &Server, execution: &Value) -> Vec<Value> {
    let page = ok(s, "get_tool_audit", json!({"execution_id": execution, "limit": 1000})).await;
    page["records"].as_array().cloned().unwrap_or_default()
}

/// Finding 1: a 70,000-character server or tool name used to panic fjall
/// (a key over 64 KiB) and leave the request unanswered.
#[tokio::test]
async fn long_names_are_type_errors_and_the_request_is_answered() {
    let s = serve(&policy(&["memory.*"], "")).await;
    for code in [
        "try { await tools['s'.repeat(70000)].t({}) } catch (e) { return e.name } return 'no error'",
        "try { await tools.memory['t'.repeat(70000)]({}) } catch (e) { return e.name } return 'no error'",
    ] {
        let (r, took) = timed_exec(&s, code).await;
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(r["output"], "TypeError", "{r}");
        assert!(took < Duration::from_secs(5), "answered in {took:?}");
    }
    ok(&s, "health_check", json!({})).await;
    let usage = ok(&s, "get_tool_audit", json!({})).await["usage"].clone();
    assert_eq!(usage, json!({}), "a name that is not a tool is never counted: {usage}");
}

/// Finding 2: refused calls used to cost nothing; a 4 s loop of them grew
/// the data dir by gigabytes. Now each costs the execution, which is
/// stopped past its refusal budget, and the audit keeps a bounded share.
#[tokio::test]
async fn refusals_cost_the_execution_and_the_audit_stays_bounded() {
    let s = serve(&policy(&["memory.*"], "")).await;
    // Let start-up writes settle before measuring.
    ok(&s, "health_check", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = dir_bytes(s.data_dir.path());
    let loops = [
        // Distinct 60 KB names: type errors.
        "const t0 = Date.now(); let n = 0; while (Date.now() - t0 < 4000) { try { await tools.memory['x'.repeat(60000) + n]({}) } catch (e) {} n++ } return n",
        // Distinct valid names the policy refuses.
        "const t0 = Date.now(); let n = 0; while (Date.now() - t0 < 4000) { try { await tools.other['t' + n]({}) } catch (e) {} n++ } return n",
        // Distinct valid names the policy admits but no server has.
        "const t0 = Date.now(); let n = 0; while (Date.now() - t0 < 4000) { try { await tools.memory['t' + n]({}) } catch (e) {} n++ } return n",
    ];
    for code in loops {
        let (r, took) = timed_exec(&s, code).await;
        assert_eq!(r["status"], "security_violation", "{r}");
        assert!(took < Duration::from_secs(3), "stopped early, in {took:?}: {r}");
        let records = audit_of(&s, &r["execution_id"]).await;
        assert!(records.len() <= 65, "{} records for one execution", records.len());
        let bytes = serde_json::to_string(&records).map(|t| t.len()).unwrap_or(0);
        assert!(bytes < 64 * 1024, "the execution's audit is {bytes} bytes");
    }
    let grown = dir_bytes(s.data_dir.path()).saturating_sub(before);
    assert!(grown < 8 << 20, "the data dir grew by {grown} bytes");
    let usage = ok(&s, "get_tool_audit", json!({})).await["usage"].clone();
    assert_eq!(usage, json!({}), "usage counts only tools that exist: {usage}");
}

/// `get_tool_audit` is paged and its reply bounded.
#[tokio::test]
async fn the_audit_is_paged() {
    let s = serve(&policy(&["memory.*"], "max_calls_per_execution = 200\n")).await;
    let r = s.exec("for (let i = 0; i < 30; i++) await tools.memory.health_check({}); return 1").await;
    assert_eq!(r["status"], "success", "{r}");
    let first = ok(&s, "get_tool_audit", json!({"limit": 20})).await;
    assert_eq!(first["records"].as_array().map(Vec::len), Some(20));
    let cursor = first["next_cursor"].as_str().expect("a cursor to go on").to_string();
    let second = ok(&s, "get_tool_audit", json!({"limit": 20, "cursor": cursor})).await;
    assert_eq!(second["records"].as_array().map(Vec::len), Some(10));
    assert!(second["next_cursor"].is_null());
    assert_eq!(first["usage"]["memory.health_check"], 30);
}

/// Finding 6: each plugin had its own rate limiter (and a reload reset
/// it), so code mode plus two plugins made three times the limit.
#[tokio::test]
async fn rate_limits_are_shared_by_code_mode_and_every_plugin() {
    let s = serve(&policy(&["memory.*"], "rate_limit_per_minute = 5\n")).await;
    let ran = s.exec("await tools.memory.health_check({}); return 1").await;
    assert_eq!(ran["status"], "success", "{ran}");
    for name in ["hc_a", "hc_b"] {
        ok(&s, "save_plugin", json!({"execution_id": ran["execution_id"], "name": name, "description": "calls health_check"}))
            .await;
    }
    wait_for_tool(&s, "hc_b").await;
    let mut ok_calls = 1;
    for round in 0..3 {
        for name in ["hc_a", "hc_b"] {
            let r = s.call(name, json!({})).await;
            if r.is_error != Some(true) {
                ok_calls += 1;
            }
        }
        if round == 1 {
            // A reload of plugin a (replaced by an identical build) keeps the windows.
            ok(&s, "save_plugin", json!({"execution_id": ran["execution_id"], "name": "hc_a", "description": "calls health_check again", "replace": true}))
                .await;
            wait_for_tool(&s, "hc_a").await;
        }
        let r = s.exec("await tools.memory.health_check({}); return 1").await;
        if r["status"] == "success" {
            ok_calls += 1;
        }
    }
    assert_eq!(ok_calls, 5, "the limit is 5 a minute across code mode and plugins");
    let page = ok(&s, "get_tool_audit", json!({"tool": "health_check", "outcome": "ok", "limit": 100})).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(5));
}

/// Finding 7: a call to `memory['*']` was admitted by `memory.*`, and
/// `save_plugin` turned its audit record into the grant `memory.*`.
#[tokio::test]
async fn grants_derived_from_an_execution_are_exact_names_of_tools_that_answered() {
    let s = serve(&policy(&["memory.*"], "")).await;
    let ran = s
        .exec(
            "const names = []; \
             for (const t of ['*', '?', '[a-z]*', '{a,b}', 'no_such_tool']) { try { await tools.memory[t]({}) } catch (e) { names.push(e.name) } } \
             await tools.memory.health_check({}); \
             try { await tools.memory.get_episode({episode_id: 'nope'}) } catch (e) { names.push(e.name) } \
             return names",
        )
        .await;
    assert_eq!(ran["status"], "success", "{ran}");
    assert_eq!(
        ran["output"],
        json!(["TypeError", "TypeError", "TypeError", "TypeError", "ToolUnavailable", "ToolError"]),
        "{ran}"
    );
    ok(&s, "save_plugin", json!({"execution_id": ran["execution_id"], "name": "derived", "description": "d"})).await;
    let listed = ok(&s, "list_plugins", json!({})).await;
    let plugin = listed["plugins"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "derived")).cloned();
    let allow = plugin.expect("the plugin is listed")["allow_tools"].clone();
    assert_eq!(allow, json!(["memory.health_check"]), "a tool that only errored is not granted");
}

async fn wait_for_tool(s: &Server, name: &str) {
    for _ in 0..200 {
        let tools = s.client.list_all_tools().await.expect("tools/list");
        if tools.iter().any(|t| t.name == name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} was never listed");
}

/// A thrown value is the guest's to size; the reply carries at most 16 KiB
/// of its message (found by an adversarial review: a 20 MB message made a
/// 60 MB reply).
#[tokio::test]
async fn thrown_messages_are_bounded_in_the_reply() {
    let s = serve(&policy(&[], "")).await;
    for code in ["throw new Error('x'.repeat(20000000))", "throw 'z'.repeat(20000000)"] {
        let r = s.call("execute_agent_code", json!({"code": code})).await;
        let bytes = serde_json::to_string(&r).map(|t| t.len()).unwrap_or(usize::MAX);
        assert!(bytes < 128 * 1024, "a {bytes}-byte reply");
        let out = r.structured_content.expect("structured");
        assert_eq!(out["status"], "error", "{out}");
    }
}


/// Code over the size limit is refused without running, and is not kept:
/// `save_plugin` can name any of a principal's last 256 executions, and
/// they were kept with their code whatever its size, so requests of a few
/// MiB each stayed resident (found by an outside attack: 100 scripts of
/// 4 MB left the server 394 MB larger; 256 of 8 MiB would hold 2 GiB).
#[tokio::test]
async fn code_refused_for_its_size_is_not_kept() {
    let mut s = Raw::start(&[]).await;
    let pid = s.child.id().expect("pid");
    s.send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "execute_agent_code", "arguments": {"code": "return 1"}}}))
        .await;
    s.reply_to(json!(1)).await;
    let before = status_kib(pid, "VmRSS");
    let pad = " ".repeat(6 << 20);
    let mut last = Value::Null;
    for i in 0..48u64 {
        let code = format!("return {i};{pad}");
        s.send_json(json!({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call", "params": {"name": "execute_agent_code", "arguments": {"code": code}}}))
            .await;
        let r = s.reply_to(json!(100 + i)).await;
        assert_eq!(r["result"]["structuredContent"]["status"], "resource_limit", "{r}");
        last = r["result"]["structuredContent"]["execution_id"].clone();
    }
    let grown = status_kib(pid, "VmRSS").saturating_sub(before) / 1024;
    eprintln!("48 refused scripts of 6 MiB: RSS grew {grown} MiB");
    assert!(grown < 144, "48 refused scripts of 6 MiB left the server {grown} MiB larger: their code was kept");
    // It is still named, and still cannot be saved.
    s.send_json(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "save_plugin", "arguments": {"execution_id": last, "name": "big", "description": "d"}}}))
        .await;
    let r = s.reply_to(json!(2)).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
}
