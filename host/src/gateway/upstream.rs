//! One upstream MCP server, reached with rmcp's client.
//!
//! Connections are lazy: nothing is spawned until a tool of the server is
//! needed. Connecting and listing tools have a timeout; so does every call.
//! A failed connection is retried after a backoff (100 ms doubling to 5 s),
//! and callers in the meantime are told the server is down and when it
//! will be tried again. A connection found closed (the process died) is
//! dropped and re-established on the next call. A call that was in flight
//! when the connection died is reported as failed, never silently
//! repeated, since tools need not be idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::servers::{Transport, UpstreamConfig};
use crate::sandbox::DispatchError;

/// Receives the upstream's notifications; a changed tool list makes the
/// cached one stale.
#[derive(Clone)]
struct Listener {
    stale: Arc<AtomicBool>,
}

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stale.store(true, Ordering::Release);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("memory-mcp", env!("CARGO_PKG_VERSION")))
    }
}

type Client = RunningService<RoleClient, Listener>;

struct Connected {
    client: Arc<Client>,
    tools: Arc<Vec<Tool>>,
    stale: Arc<AtomicBool>,
}

enum State {
    Idle,
    Connected(Connected),
    Down { error: String, retry_at: Instant, failures: u32 },
}

/// Where an upstream is, as `health_check` and `search_tools` report it.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    /// The server's name (its `[servers.NAME]` table).
    pub server: String,
    /// `idle` (not yet needed), `connected` or `down`.
    pub state: &'static str,
    /// How many tools it lists, once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<usize>,
    /// Why it is down, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it is down: how long until the next connection attempt, in
    /// milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// One upstream MCP server: its checked config and transport, connected
/// lazily on first use and reconnected with backoff when it drops.
pub struct Upstream {
    /// Its name (its `[servers.NAME]` table).
    pub name: String,
    config: UpstreamConfig,
    transport: Transport,
    state: Mutex<State>,
}

impl Upstream {
    /// An upstream not yet connected (`idle`).
    pub fn new(name: String, config: UpstreamConfig, transport: Transport) -> Self {
        Self { name, config, transport, state: Mutex::new(State::Idle) }
    }

    /// How it stands now, without waiting: `connecting` while a connection
    /// (or a call holding its state) is in progress.
    pub fn status(&self) -> UpstreamStatus {
        let mut s = UpstreamStatus { server: self.name.clone(), state: "idle", tools: None, error: None, retry_in_ms: None };
        match self.state.try_lock().as_deref() {
            Ok(State::Idle) => {}
            Ok(State::Connected(c)) => {
                s.state = if c.client.is_closed() { "down" } else { "connected" };
                s.tools = Some(c.tools.len());
            }
            Ok(State::Down { error, retry_at, .. }) => {
                s.state = "down";
                s.error = Some(error.clone());
                s.retry_in_ms = Some(retry_at.saturating_duration_since(Instant::now()).as_millis() as u64);
            }
            Err(_) => s.state = "connecting",
        }
        s
    }

    /// The server's tools, connecting first if needed.
    pub async fn tools(&self) -> Result<Arc<Vec<Tool>>, DispatchError> {
        let (client, tools, stale) = self.connection().await?;
        if !stale.swap(false, Ordering::AcqRel) {
            return Ok(tools);
        }
        let fresh = match tokio::time::timeout(self.config.connect_timeout(), client.list_all_tools()).await {
            Ok(Ok(t)) => Arc::new(t),
            Ok(Err(e)) => return Err(self.unavailable(format!("listing tools failed: {e}"))),
            Err(_) => return Err(self.unavailable("listing tools timed out".into())),
        };
        if let State::Connected(c) = &mut *self.state.lock().await {
            c.tools = fresh.clone();
        }
        Ok(fresh)
    }

    /// Calls `tool`, reconnecting first if the connection is gone.
    pub async fn call(&self, tool: &str, args: Map<String, Value>) -> Result<rmcp::model::CallToolResult, DispatchError> {
        let (client, _, _) = self.connection().await?;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        match tokio::time::timeout(self.config.call_timeout(), client.call_tool(params)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(e))) => Err(DispatchError::Failed(e.message.to_string())),
            Ok(Err(e)) => {
                self.forget(&client).await;
                Err(self.unavailable(format!("the connection failed during the call ({e}); it was not retried")))
            }
            Err(_) => Err(self.unavailable(format!(
                "`{tool}` did not answer within {} ms",
                self.config.call_timeout_ms
            ))),
        }
    }

    fn unavailable(&self, what: String) -> DispatchError {
        DispatchError::Unavailable(format!("upstream MCP server `{}`: {}", self.name, self.summarize(&what)))
    }

    /// An error's text as callers may see it: the configured URL (which
    /// may carry a secret in its path or query) replaced by the server's
    /// name, anything after an HTTP status line (a response body) cut, and
    /// at most 300 characters. The full text goes to the log only.
    fn summarize(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(url) = &self.config.url {
            let base = url.split(['?', '#']).next().unwrap_or(url);
            for secret in [url.as_str(), base] {
                if !secret.is_empty() {
                    out = out.replace(secret, &format!("<url of server {}>", self.name));
                }
            }
        }
        if let Some(at) = out.find("HTTP ") {
            let status_end = out[at..].find(": ").map(|i| at + i).unwrap_or(out.len());
            if status_end < out.len() {
                out.truncate(status_end);
                out.push_str(" (response body withheld; see the server log)");
            }
        }
        crate::sandbox::shorten(&out, 300)
    }

    /// Drops `client` if it is still the current connection.
    async fn forget(&self, client: &Arc<Client>) {
        let mut state = self.state.lock().await;
        if let State::Connected(c) = &*state
            && Arc::ptr_eq(&c.client, client)
        {
            *state = State::Idle;
        }
    }

    async fn connection(&self) -> Result<(Arc<Client>, Arc<Vec<Tool>>, Arc<AtomicBool>), DispatchError> {
        let mut state = self.state.lock().await;
        let failures = match &*state {
            State::Connected(c) if !c.client.is_closed() => {
                return Ok((c.client.clone(), c.tools.clone(), c.stale.clone()));
            }
            State::Connected(_) => {
                tracing::warn!(server = %self.name, "upstream connection closed; reconnecting");
                0
            }
            State::Idle => 0,
            State::Down { error, retry_at, failures } => {
                let wait = retry_at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    return Err(self.unavailable(format!("down ({error}); next attempt in {} ms", wait.as_millis())));
                }
                *failures
            }
        };
        match self.connect().await {
            Ok(c) => {
                tracing::info!(server = %self.name, tools = c.tools.len(), "upstream connected");
                let out = (c.client.clone(), c.tools.clone(), c.stale.clone());
                *state = State::Connected(c);
                Ok(out)
            }
            Err(error) => {
                let retry_at = Instant::now() + backoff::delay(failures);
                tracing::warn!(server = %self.name, %error, "upstream unavailable");
                // What callers (sandboxed code among them) see: no URL, no
                // response body.
                let error = self.summarize(&error);
                *state = State::Down { error: error.clone(), retry_at, failures: failures + 1 };
                Err(self.unavailable(format!("down ({error})")))
            }
        }
    }

    async fn connect(&self) -> Result<Connected, String> {
        let stale = Arc::new(AtomicBool::new(false));
        let listener = Listener { stale: stale.clone() };
        let limit = self.config.connect_timeout();
        let work = async {
            let client = match &self.transport {
                Transport::Stdio { command, args, env, cwd } => {
                    let mut cmd = tokio::process::Command::new(command);
                    cmd.args(args).envs(env);
                    if let Some(dir) = cwd {
                        cmd.current_dir(dir);
                    }
                    // The upstream's stderr is its log; ours is the operator's.
                    let (transport, _) = TokioChildProcess::builder(cmd)
                        .stderr(std::process::Stdio::inherit())
                        .spawn()
                        .map_err(|e| format!("spawning `{command}`: {e}"))?;
                    listener.serve(transport).await.map_err(|e| format!("MCP initialize: {e}"))?
                }
                Transport::Http { url, bearer_token_env } => {
                    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                    let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                    if let Some(var) = bearer_token_env {
                        let token = std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
                        config = config.auth_header(token);
                    }
                    let transport = StreamableHttpClientTransport::from_config(config);
                    listener.serve(transport).await.map_err(|e| format!("MCP initialize: {e}"))?
                }
            };
            let tools = client.list_all_tools().await.map_err(|e| format!("listing tools: {e}"))?;
            Ok::<_, String>(Connected { client: Arc::new(client), tools: Arc::new(tools), stale })
        };
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }
}
