//! Two principals, alice and bob, on a server serving Streamable HTTP,
//! and what the HTTP tests do as them: rmcp clients, raw sessions and
//! 2026-07-28 (sessionless) calls.

use std::time::Duration;

use rmcp::RoleClient;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use super::http::{self, HttpServer, initialize_body, post};

pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-9876543210";

/// A server with principals alice and bob, and `extra` options.
pub async fn team(extra: &[&str]) -> HttpServer {
    let dir = tempfile::tempdir().unwrap();
    let tokens = http::token_file(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let mut args = vec!["--token-file", tokens.to_str().unwrap()];
    args.extend_from_slice(extra);
    // The token file is read at start, before the URL is logged.
    http::start(&args, &[]).await
}

/// rmcp's Streamable HTTP client, as `token`'s principal.
pub async fn client(server: &HttpServer, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url.clone()).auth_header(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize over HTTP")
}

pub async fn call(c: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> rmcp::model::CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args.as_object().unwrap().clone());
    tokio::time::timeout(Duration::from_secs(60), c.call_tool(params)).await.expect("answered in time").expect("tools/call")
}

pub fn structured(r: &rmcp::model::CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

pub fn text(r: &rmcp::model::CallToolResult) -> String {
    super::text(r)
}

/// `_meta` of a 2026-07-28 request, which is served without a session.
pub fn sessionless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    })
}

/// The JSON-RPC answer in a response body (JSON, or the SSE event that
/// carries it).
pub fn answer(body: &str) -> Value {
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
pub async fn sessionless_call(server: &HttpServer, token: &str, tool: &str, args: Value) -> Value {
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
pub async fn raw_session(server: &HttpServer, token: &str) -> String {
    let r = post(&server.url, Some(token), initialize_body(1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let r = in_session(post(&server.url, Some(token), initialized), &id).send().await.unwrap();
    assert_eq!(r.status(), 202);
    id
}

pub fn in_session(r: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    r.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18")
}

pub fn tools_call(id: u64, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string()
}
