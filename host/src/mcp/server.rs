//! The server: its state, shared by every session, and the one list of
//! its built-in tools, merged from the routers the tool files define
//! (`core_tools.rs`, `memory_tools.rs`, `pattern_tools.rs`, ...). The MCP
//! protocol handler over it is `handler.rs`.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig, Tool};
use tokio::sync::watch;

use super::recent::{PrincipalExecutions, RecentExecutions};
use crate::embeddings::Embeddings;
use crate::gateway::Gateway;
use crate::learning::{Learning, PatternStore};
use crate::memory::EpisodeStore;
use crate::metrics::Metrics;
use crate::plugins::Registry;
use crate::principal::Principal;
use crate::sandbox::Sandbox;

/// Where the JS runtime is in its start-up.
#[derive(Clone)]
pub enum RuntimeState {
    /// Being loaded (snapshotted and compiled on first start, else read
    /// from the artifact cache).
    Loading,
    /// Loaded: executions run in this sandbox.
    Ready(Arc<Sandbox>),
    /// Loading failed (the reason); `execute_agent_code` answers with it.
    Failed(String),
}

/// The MCP server: this server's tools, over stdio or one HTTP session.
/// Cheap to clone; every clone shares the same memory, learning,
/// embeddings, gateway and plugins.
#[derive(Clone)]
pub struct Server {
    pub(super) runtime: watch::Receiver<RuntimeState>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) store: Arc<EpisodeStore>,
    pub(super) learning: Arc<Learning>,
    pub(super) embeddings: Arc<Embeddings>,
    pub(super) gateway: Arc<Gateway>,
    pub(super) plugins: Arc<Registry>,
    /// Code each principal ran, for `save_plugin` (shared by a principal's
    /// sessions and sessionless requests; one principal over stdio).
    pub(super) recent: Arc<PrincipalExecutions>,
    /// The least severe `notifications/message` level this session's client
    /// asked for (`logging/setLevel`); one per session, fresh in
    /// [`Server::for_session`]. (SEP-2577 deprecates logging; the
    /// protocol versions before 2026-07-28 still have it.)
    #[allow(deprecated)]
    pub(super) log_level: Arc<std::sync::Mutex<Option<rmcp::model::LoggingLevel>>>,
    /// Every session's resource subscriptions (shared).
    pub(super) subscriptions: Arc<super::subscriptions::Subscriptions>,
    /// This session's subscribed URIs; fresh in [`Server::for_session`].
    pub(super) subscribed: super::subscriptions::SessionUris,
    /// `tools/list` shows every tool, not only the core (see `surface`).
    pub(super) list_all: bool,
    pub(super) tool_router: ToolRouter<Self>,
    /// The copy of this server the gateway calls for `memory.*` from code
    /// (it holds it weakly): alive while any clone of this server is.
    /// `None` in that copy itself.
    pub(super) own_tools: Option<Arc<Server>>,
}

impl Server {
    /// The server over already-built parts; `runtime` reports the JS
    /// runtime's start-up (the sandbox is loaded in the background).
    pub fn new(
        runtime: watch::Receiver<RuntimeState>,
        metrics: Arc<Metrics>,
        learning: Arc<Learning>,
        embeddings: Arc<Embeddings>,
        gateway: Arc<Gateway>,
        plugins: Arc<Registry>,
    ) -> Self {
        let mut server = Self {
            runtime,
            metrics,
            store: learning.memory.clone(),
            learning,
            embeddings,
            gateway,
            plugins,
            recent: Arc::default(),
            log_level: Arc::default(),
            subscriptions: Arc::default(),
            subscribed: Arc::default(),
            list_all: false,
            tool_router: Self::all_tools(),
            own_tools: None,
        };
        // Code reaches this server's tools through the gateway, which
        // holds them weakly: no reference cycle through the gateway.
        let own = Arc::new(server.clone());
        let weak: std::sync::Weak<dyn crate::gateway::OwnTools> = Arc::downgrade(&own) as _;
        server.gateway.attach_own(weak);
        server.own_tools = Some(own);
        server
    }

    /// Lists every built-in tool in `tools/list`, not only the core ones.
    pub fn with_all_tools_listed(mut self, all: bool) -> Self {
        self.list_all = all;
        self
    }

    /// Every built-in tool, with its title, annotations, output schema and
    /// portable schemas (`surface`).
    fn all_tools() -> ToolRouter<Self> {
        let mut router = Self::core_router()
            + Self::memory_router()
            + Self::pattern_router()
            + Self::embedding_router()
            + Self::gateway_router()
            + Self::plugin_router();
        super::surface::apply(&mut router);
        router
    }

    /// The built-in tools `tools/list` shows: the core ones, or all of them.
    pub fn listed_tools(&self) -> Vec<Tool> {
        let all = self.tool_router.list_all();
        if self.list_all {
            return all;
        }
        all.into_iter().filter(super::surface::listed_by_default).collect()
    }

    /// Every built-in tool this server offers (plugins aside), as
    /// `tools/list` shows them.
    pub fn tool_list() -> Vec<Tool> {
        Self::all_tools().list_all()
    }

    /// The built-in tools' names, which plugins may not take.
    pub fn tool_names() -> Vec<String> {
        Self::tool_list().into_iter().map(|t| t.name.to_string()).collect()
    }

    pub(crate) fn plugins(&self) -> &Arc<Registry> {
        &self.plugins
    }

    /// The code `principal` ran recently.
    pub(crate) fn recent(&self, principal: &Principal) -> Arc<RecentExecutions> {
        self.recent.of(principal)
    }

    /// The handler of one more session (Streamable HTTP makes one per
    /// session, and one per sessionless request): the same shared state,
    /// and the session's own logging level and resource subscriptions.
    pub fn for_session(&self) -> Self {
        Self { log_level: Arc::default(), subscribed: Arc::default(), ..self.clone() }
    }

    pub(crate) fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    pub(crate) fn embeddings(&self) -> &Arc<Embeddings> {
        &self.embeddings
    }

    pub(crate) fn learning(&self) -> &Learning {
        &self.learning
    }

    pub(crate) fn patterns(&self) -> &PatternStore {
        &self.learning.patterns
    }

    pub(crate) fn store(&self) -> &EpisodeStore {
        &self.store
    }

    pub(crate) fn store_arc(&self) -> &Arc<EpisodeStore> {
        &self.store
    }

    /// Waits until the runtime has loaded (or failed to).
    pub(crate) async fn sandbox(&self) -> Result<Arc<Sandbox>, String> {
        let mut rx = self.runtime.clone();
        let state = rx
            .wait_for(|s| !matches!(s, RuntimeState::Loading))
            .await
            .map_err(|_| "the JS runtime loader stopped".to_string())?
            .clone();
        match state {
            RuntimeState::Ready(s) => Ok(s),
            RuntimeState::Failed(e) => Err(format!("the JS runtime failed to load: {e}")),
            RuntimeState::Loading => Err("the JS runtime is still loading".into()),
        }
    }
}

impl Server {
    /// What `initialize` tells a client; the same before the store is open
    /// (`starting`).
    #[allow(deprecated)] // enable_logging: see `set_level`
    pub(crate) fn config() -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .build(),
        )
            .with_server_info(Implementation::new("memory-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "memory-mcp runs agent JavaScript or TypeScript in a WebAssembly sandbox (execute_agent_code). \
                 Write the code as an async function body and `return` the result. Inside it, \
                 `await tools.<server>.<tool>(args)` calls MCP tools the policy allows: this server's own \
                 under `memory`, and configured upstream servers'. Find them with search_tools and read \
                 their TypeScript signatures with describe_tools (or the tools://<server>/<tool>.d.ts resources).",
            )
    }
}
