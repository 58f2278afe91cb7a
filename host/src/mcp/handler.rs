//! The MCP protocol handler (`ServerHandler`) over [`Server`]: tools (the
//! built-in routers, then the loaded plugins), resources (`tools://` and
//! `memory://`), their subscriptions, prompts, logging level and
//! `subscriptions/listen`. It sits above the files that implement each, so
//! none of them depends back on it.

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use super::server::Server;
use super::unwind::caught;
use crate::principal::Principal;

/// How long a `tools/list` waits for the start-up check of the plugins'
/// manifests (a few file reads and hashes), so the first list has them.
const PRELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

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
                format!("too many open subscriptions (at most {})", crate::plugins::MAX_SUBSCRIPTIONS),
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

    use std::sync::Arc;

    use serde_json::json;
    use tokio::sync::watch;

    use super::*;
    use crate::embeddings::Embeddings;
    use crate::gateway::Gateway;
    use crate::learning::{AnalyzersState, Learning, PatternStore};
    use crate::mcp::RuntimeState;
    use crate::memory::EpisodeStore;
    use crate::metrics::Metrics;
    use crate::plugins::{PluginDir, Registry};
    use crate::wasm::ArtifactCache;
    use crate::sandbox::CompiledPolicy;

    /// A server whose JS runtime never loads, over files in `dir`.
    fn server(dir: &std::path::Path) -> Server {
        let store = Arc::new(EpisodeStore::open(dir).unwrap());
        let patterns = Arc::new(PatternStore::open(&store).unwrap());
        let providers = crate::embeddings::Providers::new(BTreeMap::new()).unwrap();
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
