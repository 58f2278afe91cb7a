//! Serving before the episode store is open.
//!
//! Opening the store replays fjall's journal (up to 64 MB of it; ≈ 50 ms
//! for 14 MB under load, more on a slow disk), and everything the server
//! holds is built on the store. Over stdio, a client gives a server little
//! time to answer `initialize`, so [`Starting`] answers at once: it serves
//! `initialize`, `ping`, `discover` and `tools/list` from what needs no
//! store (the built-in tools and the plugins the registry lists), and
//! `health_check` with the phase (`status: "starting"`, `storage.state:
//! "opening"`). Every other request waits for the server being built in
//! the background, at most [`CORE_WAIT`] (and no longer than its own
//! cancellation), then is handed to it; once it is built, everything is.
//! If it could not be built, requests are answered with the reason
//! (`isError` for tool calls) instead of the process exiting.
//!
//! The data dir is claimed before any of this (`memory::lock`), so a
//! second server on it is still refused at once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rmcp::model::{
    CallToolResult, ClientNotification, ClientRequest, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerConfig, ServerResult, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, Service, ServiceExt as _};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Server;
use crate::metrics::Metrics;
use crate::plugins::Registry;

/// How long a request waits for the store to open before it is answered
/// with an error.
pub const CORE_WAIT: Duration = Duration::from_secs(60);

/// How long `tools/list` waits for the start-up check of the plugins'
/// manifests, as the server's own `tools/list` does.
const PRELOAD_WAIT: Duration = Duration::from_secs(10);

/// Where the server is in its start.
// One value per process, held in a watch channel and cloned on each
// request: boxing the large `Ready` would add an indirection for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Core {
    Opening,
    Ready(Server),
    Failed(String),
}

/// The stdio service while (and after) the server is built.
pub struct Starting {
    core: watch::Receiver<Core>,
    front: Front,
    started: Instant,
}

/// What is served before the store is open.
#[derive(Clone)]
struct Front {
    builtin: Arc<Vec<Tool>>,
    plugins: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl ServerHandler for Front {
    fn get_info(&self) -> ServerConfig {
        Server::config()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, ErrorData> {
        // As the server lists them (`Server::list_tools`): the
        // built-in tools, then the plugins from their verified manifests.
        let mut tools = self.builtin.as_ref().clone();
        self.plugins.preloaded(PRELOAD_WAIT).await;
        tools.extend(self.plugins.listed(super::surface::plugin_tool_of));
        Ok(ListToolsResult::with_all_items(tools))
    }
}

impl Front {
    /// `health_check` while the store opens: the same sections, each saying
    /// what it waits for.
    fn health(&self, core: &Core, opening_for: Duration) -> CallToolResult {
        let (status, storage) = match core {
            Core::Failed(e) => ("unhealthy", json!({"state": "failed", "error": e})),
            _ => ("starting", json!({"state": "opening", "opening_ms": opening_for.as_millis() as u64})),
        };
        let waiting = json!({"state": "waiting for the episode store"});
        CallToolResult::structured(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.metrics.uptime().as_secs_f64(),
            "sandbox": waiting,
            "executions": self.metrics.counts(),
            "storage": storage,
            "learning": waiting,
            "embeddings": waiting,
            "upstream_servers": [],
            "plugins": waiting,
        }))
    }
}

impl Starting {
    /// A service listing `builtin` (the tools `tools/list` shows by
    /// default, or all of them) and `plugins` until the server is built.
    fn new(builtin: Vec<Tool>, plugins: Arc<Registry>, metrics: Arc<Metrics>) -> (Self, watch::Sender<Core>) {
        let (tx, rx) = watch::channel(Core::Opening);
        let front = Front { builtin: Arc::new(builtin), plugins, metrics };
        (Self { core: rx, front, started: Instant::now() }, tx)
    }

    fn ready(&self) -> Option<Server> {
        match &*self.core.borrow() {
            Core::Ready(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The server, once built: within [`CORE_WAIT`], unless `cancel` fires.
    async fn wait(&self, cancel: &CancellationToken) -> Result<Server, String> {
        let mut rx = self.core.clone();
        let waited = tokio::select! {
            r = tokio::time::timeout(CORE_WAIT, rx.wait_for(|c| !matches!(c, Core::Opening))) => r,
            () = cancel.cancelled() => return Err("cancelled while the episode store was opening".into()),
        };
        match waited {
            Ok(Ok(c)) => match &*c {
                Core::Ready(s) => Ok(s.clone()),
                Core::Failed(e) => Err(format!("the episode store could not be opened: {e}")),
                Core::Opening => Err("the episode store is still opening".into()),
            },
            Ok(Err(_)) => Err("the server stopped while the episode store was opening".into()),
            Err(_) => Err(format!(
                "the episode store is still opening after {} s; try again shortly",
                CORE_WAIT.as_secs()
            )),
        }
    }
}

impl Service<RoleServer> for Starting {
    async fn handle_request(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        if let Some(server) = self.ready() {
            return server.handle_request(request, context).await;
        }
        match &request {
            ClientRequest::InitializeRequest(_)
            | ClientRequest::PingRequest(_)
            | ClientRequest::DiscoverRequest(_)
            | ClientRequest::ListToolsRequest(_) => return self.front.handle_request(request, context).await,
            ClientRequest::CallToolRequest(call) if call.params.name == "health_check" => {
                let core = self.core.borrow().clone();
                if !matches!(core, Core::Ready(_)) {
                    return Ok(ServerResult::CallToolResult(self.front.health(&core, self.started.elapsed())));
                }
            }
            _ => {}
        }
        match self.wait(&context.ct).await {
            Ok(server) => server.handle_request(request, context).await,
            Err(e) => match request {
                ClientRequest::CallToolRequest(_) => {
                    Ok(ServerResult::CallToolResult(CallToolResult::error(vec![ContentBlock::text(e)])))
                }
                _ => Err(ErrorData::internal_error(e, None)),
            },
        }
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Notifications run on tasks of their own: waiting holds up nothing.
        match self.wait(&CancellationToken::new()).await {
            Ok(server) => server.handle_notification(notification, context).await,
            Err(e) => {
                tracing::debug!(error = %e, "a notification was dropped");
                Ok(())
            }
        }
    }

    fn get_info(&self) -> ServerConfig {
        Server::config()
    }
}

/// Serves MCP on stdin/stdout at once, while `core` builds the server
/// (opening the store and everything on it); requests that need it wait.
/// `builtin` is what `tools/list` shows meanwhile.
pub async fn serve_stdio<F>(
    core: F,
    builtin: Vec<Tool>,
    plugins: Arc<Registry>,
    metrics: Arc<Metrics>,
    max_frame: usize,
) -> Result<()>
where
    F: Future<Output = Result<Server>> + Send + 'static,
{
    let (starting, state) = Starting::new(builtin, plugins, metrics);
    let started = Instant::now();
    tokio::spawn(async move {
        let built = match core.await {
            Ok(server) => server,
            Err(e) => {
                crate::shutdown::failed("the episode store could not be opened", &format!("{e:#}"));
                let _ = state.send(Core::Failed(format!("{e:#}")));
                return;
            }
        };
        tracing::info!(millis = started.elapsed().as_millis() as u64, "episode store open; serving every request");
        let _ = state.send(Core::Ready(built));
    });
    let (input, output) = super::framing::filtered(tokio::io::stdin(), tokio::io::stdout(), max_frame);
    let running = match starting.serve((input, output)).await.context("starting the MCP session") {
        Ok(r) => r,
        Err(e) if super::closed_before_start(&e) => {
            tracing::info!("the client closed the connection before its first request");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let reason = running.waiting().await.context("MCP session failed")?;
    tracing::info!(?reason, "MCP session ended");
    Ok(())
}
