//! The server, in-process, serving one rmcp client over an in-memory pipe:
//! the full MCP path without process start-up, shared by the benches.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use memory_mcp::embeddings::Embeddings;
use memory_mcp::gateway::Gateway;
use memory_mcp::gateway::audit::Audit;
use memory_mcp::gateway::servers::UpstreamConfig;
use memory_mcp::learning::{AnalyzersState, Learning, PatternStore};
use memory_mcp::mcp::{self, Server, RuntimeState};
use memory_mcp::memory::EpisodeStore;
use memory_mcp::metrics::Metrics;
use memory_mcp::plugins::dir::PluginDir;
use memory_mcp::plugins::registry::Registry;
use memory_mcp::wasm::artifacts::ArtifactCache;
use memory_mcp::sandbox::capabilities::Grants;
use memory_mcp::sandbox::limits::Profile;
use memory_mcp::sandbox::policy::{CompiledPolicy, ToolPolicy};
use memory_mcp::sandbox::{Sandbox, SandboxConfig};
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use tokio::sync::watch;

pub struct InProcess {
    pub sandbox: Arc<Sandbox>,
    pub gateway: Arc<Gateway>,
    pub plugins: Arc<Registry>,
    pub client: RunningService<RoleClient, ()>,
    pub dir: tempfile::TempDir,
}

/// How to wire an in-process server.
pub struct Options {
    pub policy: ToolPolicy,
    pub servers: BTreeMap<String, UpstreamConfig>,
    pub profile: Profile,
    pub max_concurrency: usize,
    /// The artifact cache; a fresh one in the temporary directory if not
    /// given.
    pub cache: Option<std::path::PathBuf>,
}

impl Options {
    /// The permissive profile, 4 executions at once, a fresh cache.
    pub fn new(policy: ToolPolicy, servers: BTreeMap<String, UpstreamConfig>) -> Self {
        Self { policy, servers, profile: Profile::Permissive, max_concurrency: 4, cache: None }
    }
}

/// The parts of a wired server, not yet serving.
pub struct Wired {
    pub server: Server,
    pub sandbox: Arc<Sandbox>,
    pub gateway: Arc<Gateway>,
    pub plugins: Arc<Registry>,
    pub dir: tempfile::TempDir,
}

/// Wires a server as `opts` says; data and plugins in a temporary
/// directory.
pub async fn wire(opts: Options) -> anyhow::Result<Wired> {
    let dir = tempfile::tempdir()?;
    let cache = ArtifactCache::new(opts.cache.clone().unwrap_or_else(|| dir.path().join("cache")));
    let store = Arc::new(EpisodeStore::open(dir.path())?);
    let patterns = Arc::new(PatternStore::open(&store)?);
    let embeddings = Embeddings::open(store.clone(), patterns.clone(), dir.path(), cache.clone(), Default::default())?;
    embeddings.spawn();
    let (_tx, analyzers) = watch::channel(AnalyzersState::Loading);
    let learning = Learning::new(store.clone(), patterns, analyzers);
    let audit = Arc::new(Audit::open(store.database(), 1_000_000)?);
    let compiled = CompiledPolicy::new(opts.policy)?;
    let gateway = Arc::new(Gateway::new(&opts.servers, Arc::new(compiled.clone()), Some(audit), Server::tool_list())?);
    let config = SandboxConfig {
        limits: opts.profile.limits(),
        max_concurrency: opts.max_concurrency,
        max_queued: 1024,
        policy: compiled,
        dispatcher: gateway.clone(),
        grants: Grants::TOOLS,
    };
    let metrics = Arc::new(Metrics::new());
    let sandbox = Arc::new(Sandbox::load(config, &cache, memory_mcp::components::JS_RUNTIME, metrics.clone()).await?);
    let (_rtx, runtime) = watch::channel(RuntimeState::Ready(sandbox.clone()));
    let plugins = Arc::new(Registry::new(
        PluginDir::new(dir.path().join("plugins")),
        gateway.policy().clone(),
        Server::tool_names(),
    ));
    let server = Server::new(runtime, metrics, learning, embeddings, gateway.clone(), plugins.clone());
    Ok(Wired { server, sandbox, gateway, plugins, dir })
}

/// A server with the permissive profile, 4 executions at once, `policy`
/// for code's tool calls, and `servers` upstream; data, cache and plugins
/// in a temporary directory.
pub async fn start(policy: ToolPolicy, servers: BTreeMap<String, UpstreamConfig>) -> anyhow::Result<InProcess> {
    let Wired { server, sandbox, gateway, plugins, dir } = wire(Options::new(policy, servers)).await?;
    let (a, b) = tokio::io::duplex(1 << 20);
    let (running, client) = tokio::join!(mcp::serve(server, a), ().serve(b));
    std::mem::forget(running?);
    Ok(InProcess { sandbox, gateway, plugins, client: client?, dir })
}
