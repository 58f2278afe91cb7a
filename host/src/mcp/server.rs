//! The server: its state, and the tool router for `execute_agent_code`,
//! `health_check` and `get_metrics` (the memory and learning tools have
//! their own routers, merged here).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Extensions, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::params::{Parameters, input_error, params_or_return};
use super::plugin_tools::{PrincipalExecutions, RecentExecutions, execution_result};
use super::unwind::caught;
use crate::embeddings::Embeddings;
use crate::gateway::Gateway;
use crate::learning::{AnalyzersState, Learning, PatternStore};
use crate::memory::EpisodeStore;
use crate::metrics::Metrics;
use crate::plugins::registry::Registry;
use crate::principal::Principal;
use crate::sandbox::{Execution, Language, Sandbox};

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

/// How long a `tools/list` waits for the start-up check of the plugins'
/// manifests (a few file reads and hashes), so the first list has them.
const PRELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The MCP server: this server's tools, over stdio or one HTTP session.
/// Cheap to clone; every clone shares the same memory, learning,
/// embeddings, gateway and plugins.
#[derive(Clone)]
pub struct Server {
    runtime: watch::Receiver<RuntimeState>,
    metrics: Arc<Metrics>,
    store: Arc<EpisodeStore>,
    learning: Arc<Learning>,
    embeddings: Arc<Embeddings>,
    gateway: Arc<Gateway>,
    plugins: Arc<Registry>,
    /// Code each principal ran, for `save_plugin` (shared by a principal's
    /// sessions and sessionless requests; one principal over stdio).
    recent: Arc<PrincipalExecutions>,
    /// The least severe `notifications/message` level this session's client
    /// asked for (`logging/setLevel`); one per session, fresh in
    /// [`Server::for_session`]. (SEP-2577 deprecates logging; the
    /// protocol versions before 2026-07-28 still have it.)
    #[allow(deprecated)]
    log_level: Arc<std::sync::Mutex<Option<rmcp::model::LoggingLevel>>>,
    /// Every session's resource subscriptions (shared).
    subscriptions: Arc<super::subscriptions::Subscriptions>,
    /// This session's subscribed URIs; fresh in [`Server::for_session`].
    subscribed: super::subscriptions::SessionUris,
    /// `tools/list` shows every tool, not only the core (see `surface`).
    list_all: bool,
    tool_router: ToolRouter<Self>,
    /// The copy of this server the gateway calls for `memory.*` from code
    /// (it holds it weakly): alive while any clone of this server is.
    /// `None` in that copy itself.
    own_tools: Option<Arc<Server>>,
}

/// `{task, input}`, visible to the code as the global `context`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeContext {
    /// What the code is for, in words.
    #[serde(default)]
    pub task: String,
    /// A JSON object the code should work on.
    #[serde(default)]
    pub input: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteAgentCodeParams {
    /// JavaScript, written as the body of an async function: `return` gives
    /// the result (returned as JSON), `await` works, and
    /// `console.log`/`console.error` are captured. At most 100 KB. No
    /// filesystem, network, environment or subprocesses are reachable.
    pub code: String,
    /// `javascript` or `typescript`; if omitted, JavaScript, or TypeScript
    /// when only that parses. Types are erased inside the sandbox (lines
    /// and columns kept).
    #[serde(default)]
    pub language: Option<Language>,
    /// Available to the code as the global `context`.
    #[serde(default)]
    pub context: CodeContext,
    /// Lower this call's wall-clock limit (ms). It cannot exceed the
    /// server's limit (5000 ms in the default profile).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Lower this call's memory limit (MiB). It cannot exceed the server's
    /// limit (128 MiB in the default profile).
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[tool_router]
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
        let weak: std::sync::Weak<dyn crate::gateway::local::OwnTools> = Arc::downgrade(&own) as _;
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
        let mut router = Self::tool_router()
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

    /// The learning section of `health_check`: the analysis backlog, the
    /// worker, each analyzer's and scorer's health, and plugins refused at
    /// start-up.
    fn learning_health(&self) -> Value {
        let (state, analyzers, rejected, scorers) = match self.learning.state() {
            AnalyzersState::Loading => ("loading", Value::Null, Value::Null, Value::Null),
            AnalyzersState::Failed(e) => ("failed", json!({"error": e}), Value::Null, Value::Null),
            AnalyzersState::Ready(set) => (
                "ready",
                serde_json::to_value(set.all().map(|a| a.report()).collect::<Vec<_>>()).unwrap_or(Value::Null),
                serde_json::to_value(&set.rejected).unwrap_or(Value::Null),
                // The scorer in use first (a plugin, when installed), then the built-in one.
                serde_json::to_value(set.scorers().map(|a| a.report()).collect::<Vec<_>>()).unwrap_or(Value::Null),
            ),
        };
        let counts: serde_json::Map<String, Value> = self
            .patterns()
            .counts()
            .into_iter()
            .map(|(k, n)| (serde_json::to_value(k).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(), json!(n)))
            .collect();
        json!({
            "state": state,
            "analysis_backlog": self.store.analysis_backlog().ok(),
            "worker": serde_json::to_value(self.learning.status()).unwrap_or(Value::Null),
            "records": self.patterns().len(),
            "records_by_kind": counts,
            "analyzers": analyzers,
            "rejected_plugins": rejected,
            "scorers": scorers,
        })
    }

    /// The plugins section of `health_check`.
    fn plugins_health(&self) -> Value {
        let (loaded, refused) = self.plugins.list();
        json!({
            "dir": self.plugins.dir().path(),
            "loaded": loaded.iter().map(|p| p.manifest.name.as_str()).collect::<Vec<_>>(),
            "refused": refused,
        })
    }

    pub(crate) fn store(&self) -> &EpisodeStore {
        &self.store
    }

    pub(crate) fn store_arc(&self) -> &Arc<EpisodeStore> {
        &self.store
    }

    /// Pool occupancy, as health and metrics report it.
    fn pool(&self, s: &Sandbox) -> Value {
        let (running, max) = s.occupancy();
        json!({"running": running, "max_concurrency": max, "queued": self.metrics.queued()})
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

    #[tool(
        description = "Run JavaScript or TypeScript in a WebAssembly sandbox and get its result. `await tools.<server>.<tool>(args)` calls the MCP tools the policy allows (this server's under `memory`, including those only search_tools lists); a failing tool throws. CPU, memory, output and code size are limited. `status`: success, error (syntax|runtime, with line), timeout, resource_limit or security_violation; all but success are isError."
    )]
    async fn execute_agent_code(
        &self,
        params: Parameters<ExecuteAgentCodeParams>,
        cancel: CancellationToken,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let principal = Principal::of(&extensions);
        let sandbox = match self.sandbox().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(e)),
        };
        let limits = match sandbox.limits().narrowed(p.timeout_ms, p.memory_mb) {
            Ok(l) => l,
            Err(e) => return Ok(input_error(e.to_string())),
        };
        let context = json!({"task": p.context.task, "input": p.context.input});
        let id = uuid::Uuid::now_v7();
        let code = p.code.clone();
        let execution = Execution { id, code: p.code, language: p.language.unwrap_or_default(), context, limits };
        let ran = super::detect::run(&sandbox, execution, p.language.is_none(), &cancel).await;
        self.recent(&principal).remember(id, code, ran.language, ran.result.status(), ran.calls.answered.into_iter().collect());
        // The execution_id names this execution's tool calls in
        // get_tool_audit and its code in save_plugin.
        let mut out = execution_result(&ran.result, id);
        if ran.detected {
            out.content.insert(0, rmcp::model::ContentBlock::text("ran as TypeScript: it did not parse as JavaScript, and did once its types were erased"));
        }
        Ok(out)
    }

    #[tool(description = "Server health: whether the JS runtime is loaded, sandbox pool occupancy, executions by status, storage (episode counts, disk size, last sync), learning (analysis backlog, each pattern analyzer's health, refused plugins), embeddings, upstream MCP servers (idle, connected or down), tool-audit size, plugins (loaded and refused) and uptime.")]
    pub(super) async fn health_check(&self, params: Parameters<NoParams>) -> Result<CallToolResult, ErrorData> {
        let _ = params_or_return!(params);
        let (status, runtime) = match &*self.runtime.borrow() {
            RuntimeState::Loading => ("starting", json!({"state": "loading"})),
            RuntimeState::Failed(e) => ("unhealthy", json!({"state": "failed", "error": e})),
            RuntimeState::Ready(s) => {
                let load = s.load_report();
                (
                    "healthy",
                    json!({
                        "state": "ready",
                        "artifact_cache_hit": load.cache_hit,
                        "load_ms": load.millis,
                        "pool": self.pool(s),
                        "limits": {
                            "timeout_ms": s.limits().timeout.as_millis() as u64,
                            "memory_mb": s.limits().memory_mb(),
                            "max_output_bytes": s.limits().max_output_bytes,
                            "max_code_bytes": s.limits().max_code_bytes,
                        },
                    }),
                )
            }
        };
        Ok(CallToolResult::structured(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.metrics.uptime().as_secs_f64(),
            "sandbox": runtime,
            "executions": self.metrics.counts(),
            "storage": self.store.stats(),
            "learning": self.learning_health(),
            "embeddings": self.embeddings.health(),
            "upstream_servers": self.gateway.health(),
            "tool_audit_records": self.gateway.audit().map(|a| a.len()),
            "plugins": self.plugins_health(),
        })))
    }

    #[tool(description = "Metrics: executions by status, latency p50/p95/p99, pool occupancy, storage figures and uptime.")]
    pub(super) async fn get_metrics(&self, params: Parameters<NoParams>) -> Result<CallToolResult, ErrorData> {
        let _ = params_or_return!(params);
        let pool = match &*self.runtime.borrow() {
            RuntimeState::Ready(s) => self.pool(s),
            _ => Value::Null,
        };
        Ok(CallToolResult::structured(json!({
            "uptime_s": self.metrics.uptime().as_secs_f64(),
            "executions": {
                "by_status": self.metrics.counts(),
                "latency": self.metrics.latency(),
            },
            "pool": pool,
            "storage": self.store.stats(),
        })))
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

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        Self::config()
    }

    /// Keeps the session's logging level. The server sends no
    /// `notifications/message` today (its log is stderr), so no level
    /// filters anything yet; the request is accepted as the spec asks.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *crate::sync::lock(&self.log_level) = Some(request.level);
        Ok(())
    }

    /// A session is ready: it hears of tool-list changes from now on.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.plugins.attach_peer(context.peer);
    }

    /// The built-in tools, then the loaded plugins.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        caught("tools/list", async {
            let mut tools = self.listed_tools();
            // Plugins are listed from their verified manifests, compiled or not.
            self.plugins.preloaded(PRELOAD_WAIT).await;
            tools.extend(self.plugins.listed(super::surface::plugin_tool_of));
            Ok(ListToolsResult::with_all_items(tools))
        })
        .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned().or_else(|| {
            self.plugins.listed(|m, p, t| (m.name == name).then(|| super::surface::plugin_tool_of(m, p, t))).into_iter().flatten().next()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The call runs as its principal's (sandbox tool calls, their rate
        // limits and audit, `memory.*` from code), and stops when its HTTP
        // client hangs up as when it cancels.
        let principal = Principal::of(&context.extensions);
        let (ct, _linked) = crate::principal::cancelled_with_client(&context.ct, &context.extensions);
        context.ct = ct;
        principal
            .scope(caught("tools/call", async {
                // A plugin is callable as soon as it is listed (its manifest verified).
                self.plugins.preloaded(PRELOAD_WAIT).await;
                if !self.tool_router.has_route(&request.name) && self.plugins.is_listed(&request.name) {
                    let cancel = context.ct.clone();
                    return Ok(CallToolResponse::Complete(self.call_plugin(&request.name, request.arguments, cancel).await));
                }
                self.tool_router.call(ToolCallContext::new(self, request, context)).await
            }))
            .await
    }

    /// The `tools://` declarations (first page), then episodes and
    /// patterns as `memory://` resources, a bounded page at a time.
    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        caught("resources/list", async {
            let cursor = request.and_then(|r| r.cursor);
            let mut resources = match cursor {
                None => self.tool_resources().await.resources,
                Some(_) => Vec::new(),
            };
            let (memory, next) = self.memory_resources(cursor.as_deref()).await?;
            resources.extend(memory);
            let mut result = ListResourcesResult::with_all_items(resources);
            result.next_cursor = next;
            Ok(result)
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut templates = self.tool_resource_templates().resource_templates;
        templates.extend(super::memory_resources::templates());
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        caught("resources/read", async {
            if let Some(read) = self.read_memory_resource(&request.uri).await {
                return Ok(read?.into());
            }
            Ok(self.read_tool_resource(&request.uri).await?.into())
        })
        .await
    }

    /// Keeps `memory://episodes/{id}` in this session's subscriptions: the
    /// session is told (`notifications/resources/updated`) when the
    /// episode changes. Any other URI is an error naming it.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let id = super::subscriptions::episode_of(&request.uri)?;
        // Read from the store itself (the in-memory summaries are still
        // being rebuilt just after start-up).
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.get_header(id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(crate::memory::StoreError::NotFound(_))) => {
                return Err(ErrorData::resource_not_found(format!("cannot subscribe to {}: no such episode", request.uri), None));
            }
            Ok(Err(e)) => return Err(ErrorData::internal_error(format!("cannot subscribe to {}: {e}", request.uri), None)),
            Err(e) => return Err(ErrorData::internal_error(format!("storage task failed: {e}"), None)),
        }
        self.subscriptions.subscribe(&self.store, &self.subscribed, context.peer, request.uri)
    }

    /// Drops a URI from this session's subscriptions (one it was not
    /// subscribed to is no error; one this server never serves is).
    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::subscriptions::episode_of(&request.uri)?;
        crate::sync::lock(&self.subscribed).remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(super::prompts::list())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        caught("prompts/get", async { Ok(super::prompts::get(self, request, context).await?.into()) }).await
    }

    /// `subscriptions/listen` (protocol 2026-07-28): a stream may ask for
    /// tool-list changes, the one list this server changes while running.
    fn accepted_subscription_filter(&self, _requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// Keeps the stream's sink with the plugins registry (which sends
    /// `notifications/tools/list_changed` on it) until the client cancels
    /// the request or the session ends.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        if context.accepted().tools_list_changed == Some(true) && !self.plugins.attach_sink(context.sink().clone()) {
            return Err(ErrorData::internal_error(
                format!("too many open subscriptions (at most {})", crate::plugins::registry::MAX_SUBSCRIPTIONS),
                None,
            ));
        }
        context.cancelled().await;
        self.plugins.detach_sink(context.sink().id());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rmcp::ServiceExt as _;
    use rmcp::handler::server::router::tool::ToolRoute;

    use super::*;
    use crate::learning::AnalyzersState;
    use crate::plugins::dir::PluginDir;
    use crate::wasm::artifacts::ArtifactCache;
    use crate::sandbox::policy::CompiledPolicy;

    /// A server whose JS runtime never loads, over files in `dir`.
    fn server(dir: &std::path::Path) -> Server {
        let store = Arc::new(EpisodeStore::open(dir).unwrap());
        let patterns = Arc::new(PatternStore::open(&store).unwrap());
        let providers = crate::embeddings::providers::Providers::new(BTreeMap::new()).unwrap();
        let embeddings =
            Embeddings::open(store.clone(), patterns.clone(), dir, ArtifactCache::new(dir.join("cache")), providers).unwrap();
        let (_tx, analyzers) = watch::channel(AnalyzersState::Loading);
        let learning = Learning::new(store, patterns, analyzers);
        let policy = Arc::new(CompiledPolicy::deny_all());
        let gateway = Arc::new(Gateway::new(&BTreeMap::new(), policy.clone(), None, Server::tool_list()).unwrap());
        let plugins = Arc::new(Registry::new(PluginDir::new(dir.join("plugins")), policy, Server::tool_names()));
        let (_rtx, runtime) = watch::channel(RuntimeState::Loading);
        Server::new(runtime, Arc::new(Metrics::new()), learning, embeddings, gateway, plugins)
    }

    /// A hook compiled only into this test: a tool whose handler panics.
    /// Its caller gets an error reply, and the session goes on.
    #[tokio::test]
    async fn a_panicking_handler_is_an_error_reply_and_the_server_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = server(dir.path());
        let schema = Arc::new(serde_json::Map::from_iter([("type".to_string(), json!("object"))]));
        server.tool_router.add_route(ToolRoute::new_dyn(Tool::new("panic_now", "panics", schema), |_| {
            Box::pin(async { panic!("the test hook panicked") })
        }));
        let (a, b) = tokio::io::duplex(1 << 16);
        let (running, client) = tokio::join!(crate::mcp::serve(server, a), ().serve(b));
        let (_running, client) = (running.unwrap(), client.unwrap());
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.call_tool(CallToolRequestParams::new("panic_now")),
        )
        .await
        .expect("the panicking request is answered");
        assert!(answer.is_err(), "a panic is an error reply: {answer:?}");
        let health = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.call_tool(CallToolRequestParams::new("health_check")),
        )
        .await
        .expect("the next request is answered")
        .unwrap();
        assert_ne!(health.is_error, Some(true));
    }
}
