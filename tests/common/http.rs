//! The real binary serving Streamable HTTP on a loopback port: spawn it,
//! learn its URL from its log, read its log, stop it with SIGTERM. Also
//! Node 22 and the official TypeScript SDK (target/npm-http, installed by
//! scripts/npm-http.sh).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub struct HttpServer {
    pub child: Child,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub data_dir: TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

/// `memory-mcp serve --http 127.0.0.1:0 <extra>` with `env`.
pub async fn start(extra: &[&str], env: &[(&str, &str)]) -> HttpServer {
    start_in(tempfile::tempdir().expect("temp dir"), extra, env).await
}

pub async fn start_in(data_dir: TempDir, extra: &[&str], env: &[(&str, &str)]) -> HttpServer {
    start_with(data_dir, &[], extra, env).await
}

/// With `global` options before `serve` (`--max-frame-bytes`, say).
pub async fn start_with(data_dir: TempDir, global: &[&str], extra: &[&str], env: &[(&str, &str)]) -> HttpServer {
    let mut cmd = Command::new(super::bin());
    cmd.arg("--data-dir")
        .arg(data_dir.path())
        .arg("--cache-dir")
        .arg(super::shared_cache())
        .args(global)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(extra)
        .env_remove("MEMORY_MCP_CONFIG")
        .env_remove("MEMORY_MCP_TOKEN")
        .env("MEMORY_MCP_LOG", "info,rmcp=error")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn memory-mcp serve --http");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("MEMORY_MCP_TEST_LOG").is_some() {
                eprintln!("server: {line}");
            }
            if let Some(i) = line.find("serving MCP over Streamable HTTP at ") {
                let rest = &line[i + "serving MCP over Streamable HTTP at ".len()..];
                let url = rest.split_whitespace().next().unwrap_or_default().to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url);
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let url = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("the server logs its URL within 60 s")
        .unwrap_or_else(|_| panic!("the server exited before serving: {:?}", log.lock().unwrap()));
    HttpServer { child, url, data_dir, log }
}

impl HttpServer {
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// `host:port`
    pub fn authority(&self) -> String {
        self.url.trim_start_matches("http://").trim_end_matches("/mcp").to_string()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = self.child.id().expect("running") as i32;
        let rc = kill_process(Pid::from_raw(pid).expect("a child's pid is positive"), Signal::TERM);
        assert!(rc.is_ok(), "kill -TERM {pid}: {rc:?}");
    }

    /// Waits for the process to exit (at most `within`).
    pub async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait()).await.expect("the server exits in time").expect("wait")
    }
}

/// A JSON-RPC `initialize` body (a protocol version with sessions).
pub fn initialize_body(id: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    })
    .to_string()
}

/// A POST to the MCP endpoint with the headers clients send.
pub fn post(url: &str, token: Option<&str>, body: String) -> reqwest::RequestBuilder {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r
}

/// Node 22 from target/npm-http.
pub fn node22() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/npm-http/node_modules/.bin/node");
    assert!(node.exists(), "{} is missing: run scripts/npm-http.sh", node.display());
    node
}

/// A script under tests/http, copied next to target/npm-http/node_modules
/// (where Node resolves its imports).
pub fn script(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let to = root.join("target/npm-http").join(name);
    std::fs::copy(root.join("tests/http").join(name), &to).expect("copy the script into target/npm-http");
    to
}

/// A token file naming `principals` (name, token).
pub fn token_file(dir: &std::path::Path, principals: &[(&str, &str)]) -> PathBuf {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (name, token) in principals {
        let hash = memory_mcp::http::token_sha256_hex(token);
        writeln!(text, "[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\n").unwrap();
    }
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).unwrap();
    path
}
