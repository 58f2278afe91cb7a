//! Streamable HTTP end to end: the real binary on a loopback port, the
//! official TypeScript SDK client (Node 22), rmcp's client, and raw HTTP
//! for what clients do not do on purpose (no token, a foreign Origin).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::{Duration, Instant};

use common::http::{self, HttpServer, initialize_body, post};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::RoleClient;
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-9876543210";

/// A server with principals alice and bob, and `extra` options.
async fn team(extra: &[&str]) -> HttpServer {
    let dir = tempfile::tempdir().unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let mut args = vec!["--token-file", tokens.to_str().unwrap()];
    args.extend_from_slice(extra);
    // The token file is read at start, before the URL is logged.
    http::start(&args, &[]).await
}

/// rmcp's Streamable HTTP client, as `token`'s principal.
async fn client(server: &HttpServer, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize over HTTP")
}

async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> rmcp::model::CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args.as_object().unwrap().clone());
    tokio::time::timeout(Duration::from_secs(60), c.call_tool(params)).await.expect("answered in time").expect("tools/call")
}

fn structured(r: &rmcp::model::CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

fn text(r: &rmcp::model::CallToolResult) -> String {
    common::text(r)
}

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
async fn sessions_are_bounded_and_a_session_that_ends_frees_its_slot() {
    let server = team(&["--max-sessions", "1", "--session-idle-secs", "2"]).await;
    let first = client(&server, ALICE).await;
    // Full: a second initialize is refused with the reason.
    let r = post(&server.url, Some(BOB), initialize_body(7)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["id"], 7);
    assert!(body["error"]["message"].as_str().unwrap().contains("too many MCP sessions"), "{body}");
    // Ending it (DELETE) frees the slot.
    let ran = call(&first, "execute_agent_code", json!({"code": "return 1"})).await;
    assert_eq!(structured(&ran)["status"], "success");
    first.cancel().await.unwrap();
    let mut freed = false;
    for _ in 0..50 {
        let r = post(&server.url, Some(BOB), initialize_body(8)).send().await.unwrap();
        if r.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the ended session's slot was not freed: {:?}", server.log());
    // That one is left idle: it times out and frees the slot in turn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_idle = client(&server, ALICE).await;
    let ran = call(&after_idle, "execute_agent_code", json!({"code": "return 2"})).await;
    assert_eq!(structured(&ran)["output"], 2);
}

#[tokio::test]
async fn a_principal_over_its_concurrency_limit_gets_429_and_others_go_on() {
    let server = team(&["--max-concurrent-requests", "1"]).await;
    let (alice, bob) = tokio::join!(client(&server, ALICE), client(&server, BOB));
    let slow = call(&alice, "execute_agent_code", json!({"code": "const t = Date.now(); while (Date.now() - t < 1500) {} return 'slow'", "timeout_ms": 4000}));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let raw = post(&server.url, Some(ALICE), initialize_body(3)).send().await.unwrap();
        let bobs = call(&bob, "execute_agent_code", json!({"code": "return 'bob'"})).await;
        (raw.status(), raw.text().await.unwrap(), bobs)
    };
    let (slow, (status, body, bobs)) = tokio::join!(slow, probe);
    assert_eq!(structured(&slow)["output"], "slow");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("principal `alice`") && body.contains("--max-concurrent-requests"), "{body}");
    assert_eq!(structured(&bobs)["output"], "bob", "bob's share is his own");
}

#[tokio::test]
async fn a_body_over_the_frame_limit_gets_413() {
    // The top-level --max-frame-bytes bounds HTTP bodies as stdio frames.
    let dir = tempfile::tempdir().unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE)]);
    let server = http::start_with(
        tempfile::tempdir().unwrap(),
        &["--max-frame-bytes", "4096"],
        &["--token-file", tokens.to_str().unwrap()],
        &[],
    )
    .await;
    let url = server.url.clone();
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(8192)}}).to_string();
    let r = post(&url, Some(ALICE), big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let small = post(&url, Some(ALICE), initialize_body(1)).send().await.unwrap();
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn sigterm_drains_the_request_in_flight_then_exits() {
    let mut server = team(&[]).await;
    let alice = client(&server, ALICE).await;
    let started = Instant::now();
    let slow = call(&alice, "execute_agent_code", json!({"code": "const t = Date.now(); while (Date.now() - t < 1500) {} return 'finished'", "timeout_ms": 4000}));
    let term = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.terminate();
    };
    let (result, ()) = tokio::join!(slow, term);
    assert_eq!(structured(&result)["output"], "finished", "the request in flight was answered");
    let status = server.exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}: {:?}", server.log());
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let log = server.log().join("\n");
    assert!(log.contains("SIGTERM: draining requests in flight"), "{log}");
    assert!(log.contains("HTTP server stopped"), "{log}");
}

#[tokio::test]
async fn silent_connections_are_bounded_and_closed_so_clients_get_through() {
    // Four connections that never send a request head fill the cap; the
    // header timeout closes them, and a real client is served after it.
    let server = team(&["--max-connections", "4", "--header-timeout-secs", "1"]).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(server.authority()).await.unwrap();
        // A head that never ends, slowloris-style.
        tokio::io::AsyncWriteExt::write_all(&mut s, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        silent.push(s);
    }
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), post(&server.url, Some(ALICE), initialize_body(1)).send())
        .await
        .expect("a real client is served once the silent connections time out")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(500), "the cap held the client back until a slot freed");
    // The server closed every silent connection: each read ends (EOF or reset).
    for mut s in silent {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .expect("the server closes a connection that sends no whole head");
        if let Ok(n) = n {
            // hyper may answer 408 before closing; then the next read is EOF.
            if n > 0 {
                let rest = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut s, &mut buf))
                    .await
                    .expect("closed after its answer");
                assert!(matches!(rest, Ok(0) | Err(_)), "closed after its answer");
            }
        }
    }
}

#[tokio::test]
async fn a_slow_body_holds_one_of_its_principals_slots_and_times_out() {
    // Bodies are read inside a slot: two slow uploads fill alice's two
    // slots, so her third request is refused at once without its body being
    // read, bob goes on, and the slow ones get 408 after the body timeout.
    let server = team(&["--max-concurrent-requests", "2", "--body-timeout-secs", "2"]).await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(server.authority()).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 1000000\r\n\r\n{{\"jsonrpc\":",
            server.authority()
        );
        tokio::io::AsyncWriteExt::write_all(&mut s, head.as_bytes()).await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = post(&server.url, Some(ALICE), initialize_body(3)).send().await.unwrap();
    assert_eq!(third.status(), 429, "alice's slots are held by her own slow bodies");
    let bobs = post(&server.url, Some(BOB), initialize_body(4)).send().await.unwrap();
    assert_eq!(bobs.status(), 200, "bob's share is his own");
    for mut s in slow {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .expect("the slow body is answered after the body timeout")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let again = post(&server.url, Some(ALICE), initialize_body(5)).send().await.unwrap();
    assert_eq!(again.status(), 200, "the slots are free again");
}

/// `_meta` of a 2026-07-28 request, which is served without a session.
fn sessionless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    })
}

/// The JSON-RPC answer in a response body (JSON, or the SSE event that
/// carries it).
fn answer(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {body:?}"))
}

/// One 2026-07-28 `tools/call`, without a session; its `result`.
async fn sessionless_call(server: &HttpServer, token: &str, tool: &str, args: Value) -> Value {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": sessionless_meta()}
    });
    let r = post(&server.url, Some(token), body.to_string())
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{tool} as {token}");
    assert!(r.headers().get("mcp-session-id").is_none(), "2026-07-28 is served without sessions");
    let v = answer(&r.text().await.unwrap());
    v.get("result").cloned().unwrap_or_else(|| panic!("{tool}: {v}"))
}

/// A raw session of `token`'s principal: initialize, then initialized.
async fn raw_session(server: &HttpServer, token: &str) -> String {
    let r = post(&server.url, Some(token), initialize_body(1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let r = in_session(post(&server.url, Some(token), initialized), &id).send().await.unwrap();
    assert_eq!(r.status(), 202);
    id
}

fn in_session(r: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    r.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18")
}

fn tools_call(id: u64, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string()
}

#[tokio::test]
async fn a_client_that_hangs_up_frees_its_slot_only_once_its_call_has_stopped() {
    // One slot for alice. She starts a 3 s busy loop and hangs up: the
    // call is stopped, and her slot is free again only when it has (the
    // next request she gets through finds no execution running).
    let server = team(&["--max-concurrent-requests", "1"]).await;
    let session = raw_session(&server, ALICE).await;
    let busy = json!({"code": "const t = Date.now(); while (Date.now() - t < 3000) {} return 'done'", "timeout_ms": 4500});
    let mut long = in_session(post(&server.url, Some(ALICE), tools_call(2, "execute_agent_code", busy)), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 200);
    // The stream has begun (the call is running); then she is gone.
    let _ = tokio::time::timeout(Duration::from_secs(5), long.chunk()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(long);
    let mut admitted = None;
    for i in 0..400 {
        let r = in_session(post(&server.url, Some(ALICE), tools_call(10 + i, "health_check", json!({}))), &session)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            continue;
        }
        assert_eq!(r.status(), 200);
        admitted = Some(answer(&r.text().await.unwrap()));
        break;
    }
    let health = admitted.expect("alice gets her slot back once her call has stopped");
    let health = &health["result"]["structuredContent"];
    assert_eq!(health["sandbox"]["pool"]["running"], 0, "her slot was free while her call still ran: {health}");
    assert!(health["executions"]["cancelled"].as_u64().unwrap_or(0) >= 1, "the call was stopped: {health}");
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
async fn each_principal_has_a_session_cap_and_a_2026_initialize_at_the_limit_gets_the_reason() {
    let server = team(&["--max-sessions", "2", "--max-sessions-per-principal", "1"]).await;
    let _first = raw_session(&server, ALICE).await;
    let again = post(&server.url, Some(ALICE), initialize_body(5)).send().await.unwrap();
    assert_eq!(again.status(), 503);
    let body: Value = serde_json::from_str(&again.text().await.unwrap()).unwrap();
    assert_eq!(body["id"], 5);
    assert!(body["error"]["message"].as_str().unwrap().contains("principal `alice`"), "{body}");
    let _bobs = raw_session(&server, BOB).await;
    // All sessions taken: an initialize naming 2026-07-28 is checked too.
    let init = json!({
        "jsonrpc": "2.0", "id": 6, "method": "initialize",
        "params": {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    });
    let r = post(&server.url, Some(BOB), init.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["id"], 6);
    assert!(body["error"]["message"].as_str().unwrap().contains("too many MCP sessions"), "{body}");
    // Ending a session that does not exist: 404.
    let del = reqwest::Client::new()
        .delete(&server.url)
        .header("authorization", format!("Bearer {ALICE}"))
        .header("mcp-session-id", "no-such-session")
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
}

#[tokio::test]
async fn an_open_get_stream_keeps_its_session_past_the_idle_timeout() {
    let server = team(&["--session-idle-secs", "1"]).await;
    let session = raw_session(&server, ALICE).await;
    let mut stream = in_session(reqwest::Client::new().get(&server.url), &session)
        .header("authorization", format!("Bearer {ALICE}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    let r = in_session(post(&server.url, Some(ALICE), ping.clone()), &session).send().await.unwrap();
    assert_eq!(r.status(), 200, "the session with an open stream was ended as idle");
    // Without the stream it is idle, and ends.
    reader.abort();
    let mut ended = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = in_session(post(&server.url, Some(ALICE), ping.clone()), &session).send().await.unwrap();
        if r.status() == 404 {
            ended = true;
            break;
        }
        // A ping is activity: wait a whole idle period before the next.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(ended, "the idle session did not end");
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

fn h2_frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[ty, flags, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Holds an HTTP/2 (h2c, prior knowledge) connection that sends the
/// preface, acknowledges settings and answers pings, but never opens a
/// stream. Returns how long until the server closed it, or `None` if it was
/// still open after `within`.
fn hold_idle_h2(mut s: std::net::TcpStream, within: Duration) -> Option<Duration> {
    use std::io::{ErrorKind, Read as _, Write as _};
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    while start.elapsed() < within {
        match s.read(&mut chunk) {
            Ok(0) => return Some(start.elapsed()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return Some(start.elapsed()),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (ty, flags, payload) = (buf[3], buf[4], buf[9..9 + len].to_vec());
            buf.drain(..9 + len);
            let reply = match (ty, flags & 1) {
                (4, 0) => Some(h2_frame(4, 1, &[])),
                (6, 0) => Some(h2_frame(6, 1, &payload)),
                _ => None,
            };
            if let Some(r) = reply
                && s.write_all(&r).is_err()
            {
                return Some(start.elapsed());
            }
        }
    }
    None
}

#[tokio::test]
async fn idle_http2_connections_that_answer_pings_are_closed_so_clients_get_through() {
    // Four h2c connections that never open a stream fill the connection
    // cap; they answer the server's pings, so only the rule "a first request
    // within --header-timeout-secs" closes them, and a real client is served.
    let server = team(&["--max-connections", "4", "--header-timeout-secs", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(server.authority()).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        s.write_all(&h2_frame(4, 0, &[])).unwrap();
        held.push(std::thread::spawn(move || hold_idle_h2(s, Duration::from_secs(90))));
    }
    let r = tokio::time::timeout(Duration::from_secs(60), post(&server.url, Some(ALICE), initialize_body(1)).send())
        .await
        .expect("a real client is served once the idle HTTP/2 connections are closed")
        .unwrap();
    assert_eq!(r.status(), 200);
    for h in held {
        let closed = tokio::task::spawn_blocking(move || h.join().unwrap()).await.unwrap();
        assert!(closed.is_some(), "the server closed the idle HTTP/2 connection");
    }
    let log = server.log().join("\n");
    assert!(log.contains("descriptor limit"), "the descriptor figures are logged: {log}");
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

#[tokio::test]
async fn one_principal_cannot_fill_the_execution_pool() {
    // A pool of 4 shared by alice and bob: each holds at most 2 slots, so
    // bob's four endless loops leave room for alice.
    let dir = tempfile::tempdir().unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let server = http::start_with(
        tempfile::tempdir().unwrap(),
        &["--max-concurrency", "4", "--timeout-ms", "90000"],
        &["--token-file", tokens.to_str().unwrap()],
        &[],
    )
    .await;
    let spin = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute_agent_code", "arguments": {"code": "while (true) {}"}, "_meta": sessionless_meta()}
    })
    .to_string();
    let mut spins = Vec::new();
    for _ in 0..4 {
        let request = post(&server.url, Some(BOB), spin.clone())
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "execute_agent_code")
            .timeout(Duration::from_secs(120));
        spins.push(tokio::spawn(async move { request.send().await.map(|r| r.status()) }));
    }
    // Bob's loops have started (as many as his share allows).
    let mut running = 0;
    for _ in 0..200 {
        let health = sessionless_call(&server, ALICE, "health_check", json!({})).await;
        running = health["structuredContent"]["sandbox"]["pool"]["running"].as_u64().unwrap_or(0);
        if running >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 2, "bob's loops run, two at most");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let health = sessionless_call(&server, ALICE, "health_check", json!({})).await;
    assert_eq!(health["structuredContent"]["sandbox"]["pool"]["running"], 2, "bob holds his share only: {health}");
    // Alice's execution is served while bob's loops still run (they would
    // hold every slot for 90 s).
    let started = Instant::now();
    let alice = tokio::time::timeout(
        Duration::from_secs(45),
        sessionless_call(&server, ALICE, "execute_agent_code", json!({"code": "return 1"})),
    )
    .await
    .expect("alice is served while bob's loops run");
    assert_eq!(alice["structuredContent"]["output"], 1, "{alice}");
    assert!(started.elapsed() < Duration::from_secs(45));
    for s in &spins {
        assert!(!s.is_finished(), "bob's loops still run");
    }
    for s in spins {
        s.abort();
    }
}

/// A 2026-07-28 `subscriptions/listen` stream of `token`'s principal, open
/// (its response head received).
async fn listen(server: &HttpServer, token: &str, id: u64) -> reqwest::Response {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}, "_meta": sessionless_meta()}
    });
    tokio::time::timeout(
        Duration::from_secs(60),
        post(&server.url, Some(token), body.to_string())
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "subscriptions/listen")
            .send(),
    )
    .await
    .expect("the listen stream opens")
    .unwrap()
}

#[tokio::test]
async fn listen_streams_hold_no_request_slot_and_end_at_shutdown() {
    // Two request slots for alice, three listen streams open: her calls
    // still get through, and SIGTERM does not wait out the 60 s drain.
    let mut server = team(&["--max-concurrent-requests", "2", "--drain-secs", "60"]).await;
    let mut streams = Vec::new();
    for i in 0..3 {
        let s = listen(&server, ALICE, 100 + i).await;
        assert_eq!(s.status(), 200, "listen {i}");
        streams.push(s);
    }
    let health = sessionless_call(&server, ALICE, "health_check", json!({})).await;
    assert_eq!(health["isError"], false, "{health}");
    let started = Instant::now();
    server.terminate();
    let status = server.exit(Duration::from_secs(40)).await;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "the listen streams held the drain");
    drop(streams);
}

#[tokio::test]
async fn get_streams_are_one_per_session_and_bounded_per_principal() {
    let server = team(&["--max-streams-per-principal", "2"]).await;
    let get = |session: &str| {
        in_session(reqwest::Client::new().get(&server.url), session)
            .header("authorization", format!("Bearer {ALICE}"))
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(120))
            .send()
    };
    let one = raw_session(&server, ALICE).await;
    let first = get(&one).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = get(&one).await.unwrap();
    assert_eq!(second.status(), 409, "one GET stream per session");
    let two = raw_session(&server, ALICE).await;
    let other = get(&two).await.unwrap();
    assert_eq!(other.status(), 200);
    let three = raw_session(&server, ALICE).await;
    let over = get(&three).await.unwrap();
    assert_eq!(over.status(), 429, "alice has two streams open, her limit");
    // Bob's streams are his own.
    let bobs = raw_session(&server, BOB).await;
    let r = in_session(reqwest::Client::new().get(&server.url), &bobs)
        .header("authorization", format!("Bearer {BOB}"))
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A stream that ends gives its places back.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        let r = get(&one).await.unwrap();
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the session's GET stream was not given back when it ended");
}

#[tokio::test]
async fn a_request_head_over_64_kib_gets_431() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = team(&[]).await;
    let mut s = tokio::net::TcpStream::connect(server.authority()).await.unwrap();
    let pad = "a".repeat(200 * 1024);
    let head = format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n");
    // The server may answer and close before all of it is written.
    let _ = s.write_all(head.as_bytes()).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{:?}", text.chars().take(200).collect::<String>());
}
