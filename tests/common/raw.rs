//! A raw stdio client: the real binary, spoken to line by line, for tests
//! of what an SDK client would never send.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

pub struct Raw {
    pub child: Child,
    pub stdin: ChildStdin,
    pub lines: Lines<BufReader<ChildStdout>>,
    pub dir: tempfile::TempDir,
}

impl Raw {
    pub async fn start(extra: &[&str]) -> Raw {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = super::command(&dir, extra);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut raw = Raw { child, stdin, lines, dir };
        raw.send_json(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
            .await;
        let init = raw.next().await;
        assert_eq!(init["id"], 0, "{init}");
        raw.send_json(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send(v.to_string().as_bytes()).await;
    }

    /// The next line on stdout, which must be JSON.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("a reply within 60 s")
            .unwrap()
            .expect("stdout open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"))
    }

    pub async fn ping(&mut self, id: u64) {
        self.send_json(json!({"jsonrpc": "2.0", "id": id, "method": "ping"})).await;
        let r = self.next().await;
        assert_eq!(r["id"], id, "{r}");
        assert!(r.get("result").is_some(), "{r}");
    }
    /// The next reply with this `id`, skipping anything else (a reply to a
    /// cancelled request, a notification).
    pub async fn reply_to(&mut self, id: Value) -> Value {
        loop {
            let v = self.next().await;
            if v["id"] == id && v.get("method").is_none() {
                return v;
            }
        }
    }
}
