//! Streamable HTTP end to end, connections: bodies over the frame limit
//! (413), request heads over 64 KiB (431), silent and slow connections
//! and idle HTTP/2 connections, each bounded and closed so real clients
//! get through.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::{Duration, Instant};

use common::http::{self, initialize_body, post};
use common::team::{ALICE, BOB, team};
use serde_json::json;

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

