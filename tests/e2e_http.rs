//! Streamable HTTP end to end, clients and principals: the real binary on
//! a loopback port, the official TypeScript SDK client (Node 22), rmcp's
//! client, and raw HTTP for what clients do not do on purpose (no token, a
//! foreign Origin); whose sessions, executions, audit and plugins are
//! whose; token files. Limits are in e2e_http_limits.rs, connections in
//! e2e_http_connections.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::Duration;

use common::http::{self, initialize_body, post};
use common::team::{ALICE, BOB, call, client, sessionless_call, structured, team, text};
use serde_json::{Value, json};

#[tokio::test]
async fn the_official_typescript_client_initializes_lists_calls_and_ends_its_session() {
    let server = http::start(&[], &[("MEMORY_MCP_TOKEN", ALICE)]).await;
    let out = tokio::process::Command::new(http::node22())
        .arg(http::script("sdk-client.mjs"))
        .args([&server.url, ALICE, "return context.task.length * 2"])
        .output()
        .await
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the TS SDK client failed: {stderr}");
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    assert!(v["sessionId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v["tools"].as_array().unwrap().iter().any(|t| t == "execute_agent_code"), "{v}");
    assert_eq!(v["isError"], false, "{v}");
    assert_eq!(v["structured"]["status"], "success", "{v}");
    assert_eq!(v["structured"]["output"], 0, "{v}");
    // One log line per request, with the principal, never the token.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    let requests: Vec<&String> = log.iter().filter(|l| l.contains("http request")).collect();
    for rpc in ["initialize", "tools/list", "tools/call"] {
        assert!(
            requests.iter().any(|l| l.contains(&format!("rpc=\"{rpc}\"")) && l.contains("status=200") && l.contains("principal=\"token\"")),
            "no log line for {rpc}: {requests:#?}"
        );
    }
    assert!(requests.iter().any(|l| l.contains("method=DELETE")), "the session was ended with DELETE: {requests:#?}");
    assert!(requests.iter().all(|l| l.contains(" ms=")), "{requests:#?}");
    assert!(!log.iter().any(|l| l.contains(ALICE)), "a token reached the log");
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401_with_www_authenticate() {
    let server = team(&[]).await;
    for token in [None, Some("not-a-token"), Some("")] {
        let r = post(&server.url, token, initialize_body(1)).send().await.unwrap();
        assert_eq!(r.status(), 401, "token {token:?}");
        let challenge = r.headers().get("www-authenticate").expect("WWW-Authenticate").to_str().unwrap().to_string();
        assert!(challenge.starts_with("Bearer realm=\"memory-mcp\""), "{challenge}");
    }
    // Basic auth is not a bearer token.
    let r = reqwest::Client::new()
        .post(&server.url)
        .header("authorization", "Basic YWxpY2U6eA==")
        .header("content-type", "application/json")
        .body(initialize_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ok = post(&server.url, Some(BOB), initialize_body(1)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let log = server.log().join("\n");
    assert!(!log.contains(BOB) && !log.contains("not-a-token"), "a token reached the log");
    assert!(log.contains("status=401"), "refusals are logged too");
}

#[tokio::test]
async fn a_foreign_origin_or_host_gets_403() {
    let server = team(&["--allowed-origin", "https://app.example.com:443"]).await;
    let with = |origin: Option<&str>, host: Option<&str>| {
        let mut r = post(&server.url, Some(ALICE), initialize_body(1));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r
    };
    let evil = with(Some("http://evil.example"), None).send().await.unwrap();
    assert_eq!(evil.status(), 403);
    let rebound = with(None, Some("evil.example:80")).send().await.unwrap();
    assert_eq!(rebound.status(), 403, "a DNS-rebound Host is refused");
    for bad in ["http://localhost:1.evil.com", "http://localhost:80x", "http://127.0.0.1:99999", "http://localhost:/x"] {
        let r = with(Some(bad), None).send().await.unwrap();
        assert_eq!(r.status(), 403, "{bad}: `:*` accepts only a numeric port");
    }
    let local = with(Some("http://localhost:5173"), None).send().await.unwrap();
    assert_eq!(local.status(), 200, "a page on this machine, any port");
    let listed = with(Some("https://app.example.com"), None).send().await.unwrap();
    assert_eq!(listed.status(), 200, "an allowed Origin passes");
    let none = with(None, None).send().await.unwrap();
    assert_eq!(none.status(), 200, "a client without Origin (not a browser) passes");
}

#[tokio::test]
async fn a_non_loopback_address_without_a_token_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("MEMORY_MCP_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve on 0.0.0.0:0 without authentication"), "{stderr}");
    assert!(stderr.contains("MEMORY_MCP_TOKEN"), "{stderr}");
}

#[tokio::test]
async fn two_sessions_at_once_keep_their_executions_apart() {
    let server = team(&[]).await;
    let (alice, bob) = tokio::join!(client(&server, ALICE), client(&server, BOB));
    // At once: each gets its own context and result.
    let code = "let s = 0; for (let i = 0; i < 200000; i++) s += i; return context.task";
    let (a, b) = tokio::join!(
        call(&alice, "execute_agent_code", json!({"code": code, "context": {"task": "alice's"}})),
        call(&bob, "execute_agent_code", json!({"code": code, "context": {"task": "bob's"}})),
    );
    assert_eq!(structured(&a)["output"], "alice's");
    assert_eq!(structured(&b)["output"], "bob's");
    // Alice's execution is hers: bob cannot save it as a plugin, she
    // finds it (and is refused only because it failed).
    let failed = call(&alice, "execute_agent_code", json!({"code": "throw new Error('no')"})).await;
    let id = structured(&failed)["execution_id"].as_str().unwrap().to_string();
    let save = json!({"execution_id": id, "name": "alices_plugin", "description": "d"});
    let by_bob = call(&bob, "save_plugin", save.clone()).await;
    assert_eq!(by_bob.is_error, Some(true));
    assert!(text(&by_bob).contains("no execution") && text(&by_bob).contains("`bob`"), "{}", text(&by_bob));
    let by_alice = call(&alice, "save_plugin", save).await;
    assert_eq!(by_alice.is_error, Some(true));
    assert!(text(&by_alice).contains("only code that ran successfully"), "{}", text(&by_alice));
    // A second session of the same principal shares its executions.
    let alice2 = client(&server, ALICE).await;
    let again = call(&alice2, "save_plugin", json!({"execution_id": id, "name": "alices_plugin", "description": "d"})).await;
    assert!(text(&again).contains("only code that ran successfully"), "{}", text(&again));
    // A session id is its principal's: bob cannot use alice's.
    let log = server.log().join("\n");
    assert!(log.contains("principal=\"alice\"") && log.contains("principal=\"bob\""));
    let _ = (alice.cancel().await, bob.cancel().await, alice2.cancel().await);
}

#[tokio::test]
async fn a_session_belongs_to_its_principal() {
    let server = team(&[]).await;
    let r = post(&server.url, Some(ALICE), initialize_body(1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    let as_bob = post(&server.url, Some(BOB), ping.clone())
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(as_bob.status(), 404, "another principal's session is not found");
    let del = reqwest::Client::new()
        .delete(&server.url)
        .header("authorization", format!("Bearer {BOB}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404, "nor can it be ended by them");
}

#[tokio::test]
async fn without_sessions_each_principal_has_its_own_rate_limits_audit_executions_and_plugins() {
    // 2026-07-28 requests, no session: the principal still keys the rate
    // limits, the audit, memory.* calls from code, save_plugin's recent
    // executions, and who may replace or remove a plugin.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("memory-mcp.toml");
    std::fs::write(&config, "[sandbox.tools]\nallow = [\"memory.*\"]\nrate_limit_per_minute = 3\n").unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let server = http::start_with(
        tempfile::tempdir().unwrap(),
        &["--config", config.to_str().unwrap()],
        &["--token-file", tokens.to_str().unwrap()],
        &[],
    )
    .await;
    let run = |token: &'static str, code: &str| {
        let args = json!({"code": code});
        let server = &server;
        async move { sessionless_call(server, token, "execute_agent_code", args).await }
    };
    // Alice uses up her share of memory.health_check: 2 of the 3 a minute
    // that all callers share, with two principals.
    let alice = run(ALICE, "for (let i = 0; i < 4; i++) await tools.memory.health_check({}); return 'unlimited'").await;
    assert_eq!(alice["structuredContent"]["status"], "security_violation", "{alice}");
    let why = alice["structuredContent"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("rate limit") && why.contains("`alice`"), "{alice}");
    // Bob's share is his own, and memory.* from his code runs as bob: the
    // audit he reads from code is his alone.
    let bob = run(BOB, "await tools.memory.health_check({}); return (await tools.memory.get_tool_audit({})).records.map(r => r.principal)").await;
    assert_eq!(bob["structuredContent"]["status"], "success", "{bob}");
    assert_eq!(bob["structuredContent"]["output"], json!(["bob"]), "{bob}");
    // That was the tool's third call this minute: its limit is one for
    // all principals, so bob's share (2) does not reach past it.
    let over = run(BOB, "await tools.memory.health_check({}); return 'past the limit'").await;
    assert_eq!(over["structuredContent"]["status"], "security_violation", "{over}");
    assert!(over["structuredContent"]["reason"].as_str().unwrap_or_default().contains("rate limit"), "{over}");
    // Alice's audit, read directly: her records only, each naming her.
    let audit = sessionless_call(&server, ALICE, "get_tool_audit", json!({})).await;
    let records = audit["structuredContent"]["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 3, "two calls and the refusal: {audit}");
    assert!(records.iter().all(|r| r["principal"] == "alice"), "{audit}");
    assert!(records.iter().any(|r| r["outcome"] == "denied"), "{audit}");
    // Her executions are hers for save_plugin, across requests.
    let ok = run(ALICE, "return (context.input?.n ?? 0) + 1").await;
    let id = ok["structuredContent"]["execution_id"].as_str().unwrap().to_string();
    let save = json!({"execution_id": id, "name": "alice_inc", "description": "adds one"});
    let by_bob = sessionless_call(&server, BOB, "save_plugin", save.clone()).await;
    assert_eq!(by_bob["isError"], true, "{by_bob}");
    assert!(by_bob.to_string().contains("principal `bob`"), "{by_bob}");
    let by_alice = sessionless_call(&server, ALICE, "save_plugin", save).await;
    assert_eq!(by_alice["isError"], false, "{by_alice}");
    assert_eq!(by_alice["structuredContent"]["saved"]["saved_by"], "alice", "{by_alice}");
    // Plugins are shared, but only alice (or the operator) may replace or
    // remove hers.
    let called = sessionless_call(&server, BOB, "alice_inc", json!({"n": 41})).await;
    assert_eq!(called["structuredContent"]["output"], 42, "{called}");
    let bobs = run(BOB, "return 'bob'").await;
    let bobs_id = bobs["structuredContent"]["execution_id"].as_str().unwrap().to_string();
    let replace = json!({"execution_id": bobs_id, "name": "alice_inc", "description": "mine now", "replace": true});
    let replaced = sessionless_call(&server, BOB, "save_plugin", replace).await;
    assert_eq!(replaced["isError"], true, "{replaced}");
    assert!(replaced.to_string().contains("saved by principal `alice`"), "{replaced}");
    let removed = sessionless_call(&server, BOB, "remove_plugin", json!({"name": "alice_inc"})).await;
    assert_eq!(removed["isError"], true, "{removed}");
    let removed = sessionless_call(&server, ALICE, "remove_plugin", json!({"name": "alice_inc"})).await;
    assert_eq!(removed["isError"], false, "{removed}");
}

#[tokio::test]
async fn malformed_bodies_get_json_rpc_errors() {
    let server = team(&[]).await;
    for (body, code, id) in [
        ("{not json".to_string(), -32700, Value::Null),
        (json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).to_string(), -32600, Value::Null),
        (json!({"jsonrpc": "2.0", "id": 9, "method": 7}).to_string(), -32600, json!(9)),
        ("\"text\"".to_string(), -32600, Value::Null),
    ] {
        let r = post(&server.url, Some(ALICE), body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.headers()["content-type"], "application/json", "{body}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert_eq!(v["id"], id, "{body}: {v}");
    }
}

#[tokio::test]
async fn a_token_file_that_does_not_parse_is_refused_without_echoing_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "plaintext-team-token-4f9a";
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("[[principals]]\nname = \"alice\"\ntoken_sha256 = {secret}\n")).unwrap();
    let out = tokio::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--http", "127.0.0.1:0", "--token-file"])
        .arg(&tokens)
        .env_remove("MEMORY_MCP_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not valid") && stderr.contains("line 3"), "{stderr}");
    assert!(!stderr.contains(secret), "the token file's line reached stderr: {stderr}");
}

#[tokio::test]
async fn a_principal_sees_only_its_own_audit_counts() {
    // Alice's calls from code are not visible to bob, neither as records
    // nor as counts (total_records, usage).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("memory-mcp.toml");
    std::fs::write(&config, "[sandbox.tools]\nallow = [\"memory.*\"]\nrate_limit_per_minute = 100\n").unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let server = http::start_with(
        tempfile::tempdir().unwrap(),
        &["--config", config.to_str().unwrap()],
        &["--token-file", tokens.to_str().unwrap()],
        &[],
    )
    .await;
    let code = json!({"code": "await tools.memory.health_check({}); await tools.memory.health_check({}); return 1"});
    let ran = sessionless_call(&server, ALICE, "execute_agent_code", code).await;
    assert_eq!(ran["structuredContent"]["status"], "success", "{ran}");
    let bob = sessionless_call(&server, BOB, "get_tool_audit", json!({})).await;
    let bob = &bob["structuredContent"];
    assert_eq!(bob["records"], json!([]), "{bob}");
    assert_eq!(bob["total_records"], 0, "bob's count is his own: {bob}");
    assert!(bob["usage"].as_object().is_some_and(|u| u.is_empty()), "bob's usage is his own: {bob}");
    let alice = sessionless_call(&server, ALICE, "get_tool_audit", json!({})).await;
    let alice = &alice["structuredContent"];
    assert_eq!(alice["total_records"], 2, "{alice}");
    assert_eq!(alice["usage"]["memory.health_check"], 2, "{alice}");
}

/// `serve --http` with `tokens` as the token file: its exit and stderr.
async fn serve_with_token_file(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, text).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(common::bin())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--http", "127.0.0.1:0", "--token-file"])
            .arg(&tokens)
            .env_remove("MEMORY_MCP_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a bad token file is refused at start")
    .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn a_token_file_principal_cannot_take_the_operators_name() {
    for name in ["local", "Local"] {
        let text = format!("[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\n", "ab".repeat(32));
        let (ok, stderr) = serve_with_token_file(&text).await;
        assert!(!ok, "{name}: served");
        assert!(stderr.contains("is reserved") && stderr.contains("operator"), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn token_file_errors_never_echo_a_key_or_value_from_the_file() {
    let secret = "plain-TOKEN-in-file-9999";
    let hash = "ab".repeat(32);
    for text in [
        format!("[[principals]]\nname = \"{secret} x\"\ntoken_sha256 = \"{hash}\"\n"),
        format!("[[principals]]\nname = \"x\"\ntoken_sha256 = \"{hash}\"\n[{secret}]\n"),
        format!("[[principals]]\nname = \"x\"\ntoken_sha256 = \"{hash}\"\n{secret} = 1\n"),
        format!("[[principals]]\nname = \"x\"\n{secret} = \"{hash}\"\n"),
    ] {
        let (ok, stderr) = serve_with_token_file(&text).await;
        assert!(!ok, "served with {text:?}");
        assert!(stderr.contains("tokens.toml"), "{stderr}");
        assert!(!stderr.to_lowercase().contains(&secret.to_lowercase()), "the file's text reached stderr: {stderr}");
    }
}
