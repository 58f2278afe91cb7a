//! Streamable HTTP end to end, limits: sessions bounded overall and per
//! principal, request slots per principal (429), the execution pool shared
//! fairly, GET and listen streams, and SIGTERM's drain.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::{Duration, Instant};

use common::http::{self, HttpServer, initialize_body, post};
use common::team::{ALICE, BOB, answer, call, client, in_session, raw_session, sessionless_call, sessionless_meta, structured, team, tools_call};
use serde_json::{Value, json};

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
