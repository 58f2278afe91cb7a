//! Shared harness: spawn the real `memory-mcp` binary and talk MCP to it
//! over stdio with rmcp's client.

#![allow(dead_code)]

pub mod learning;
pub mod process;
pub mod http;
pub mod raw;
pub mod team;
pub mod upstream;

use std::path::PathBuf;
use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memory-mcp")
}

/// One artifact cache for the whole test run, so the runtime is compiled
/// once rather than per test.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifact-cache")
}

/// A spawned server and the client talking to it; `H` handles the
/// server's notifications (`()` ignores them).
pub struct Server<H: ClientHandler = ()> {
    pub client: RunningService<RoleClient, H>,
    pub data_dir: TempDir,
}

/// A command for the binary with a fresh data dir and the shared cache.
pub fn command(data_dir: &TempDir, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir")
        .arg(data_dir.path())
        .arg("--cache-dir")
        .arg(shared_cache())
        .args(extra)
        .env_remove("MEMORY_MCP_CONFIG")
        .env("MEMORY_MCP_LOG", "warn");
    if std::env::var_os("MEMORY_MCP_TEST_LOG").is_some() {
        cmd.stderr(Stdio::inherit());
    } else {
        cmd.stderr(Stdio::null());
    }
    cmd
}

pub async fn spawn(extra: &[&str]) -> Server {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_in(data_dir, extra).await
}

pub async fn spawn_in(data_dir: TempDir, extra: &[&str]) -> Server {
    spawn_with((), data_dir, extra).await
}

/// Spawns with `handler` receiving the server's notifications.
pub async fn spawn_with<H: ClientHandler>(handler: H, data_dir: TempDir, extra: &[&str]) -> Server<H> {
    let transport = TokioChildProcess::new(command(&data_dir, extra)).expect("spawn memory-mcp");
    let client = handler.serve(transport).await.expect("MCP initialize");
    Server { client, data_dir }
}

/// Spawns with extra environment variables and the server's stderr
/// written to `stderr` (at debug level).
pub async fn spawn_logged(data_dir: TempDir, extra: &[&str], env: &[(&str, &str)], stderr: &std::path::Path) -> Server {
    let mut cmd = command(&data_dir, extra);
    cmd.envs(env.iter().copied()).env("MEMORY_MCP_LOG", "debug");
    let log = std::fs::File::create(stderr).expect("stderr file");
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(log).spawn().expect("spawn memory-mcp");
    let client = ().serve(transport).await.expect("MCP initialize");
    Server { client, data_dir }
}

impl<H: ClientHandler> Server<H> {
    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let Value::Object(map) = args else {
            panic!("arguments must be an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map))
            .await
            .unwrap_or_else(|e| panic!("calling {tool}: {e}"))
    }

    /// Runs `code` and returns the structured result.
    pub async fn exec(&self, code: &str) -> Value {
        self.exec_with(json!({ "code": code })).await
    }

    /// Runs and returns the structured result, which a failed script keeps:
    /// anything but `success` is an `isError` result (input errors, with no
    /// structured result, fail the test).
    pub async fn exec_with(&self, args: Value) -> Value {
        let r = self.call("execute_agent_code", args).await;
        let out = r.structured_content.unwrap_or_else(|| panic!("tool error: {:?}", r.content));
        assert_eq!(r.is_error == Some(true), out["status"] != "success", "isError is set exactly when the script failed: {out}");
        out
    }
}

/// The text of the first text block.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// Calls `tool` and returns its structured result, failing the test on an
/// `isError` result.
pub async fn ok<H: ClientHandler>(s: &Server<H>, tool: &str, args: Value) -> Value {
    let r = s.call(tool, args.clone()).await;
    assert_ne!(r.is_error, Some(true), "{tool}({args}) failed: {}", text(&r));
    r.structured_content.expect("structured")
}

/// Calls `tool`, expects an `isError` result, and returns its text.
pub async fn err<H: ClientHandler>(s: &Server<H>, tool: &str, args: Value) -> String {
    let r = s.call(tool, args.clone()).await;
    assert_eq!(r.is_error, Some(true), "{tool}({args}) should fail: {:?}", r.structured_content);
    text(&r)
}
