//! The server, in-process, serving one rmcp client over an in-memory pipe
//! (`tokio::io::duplex`, as rmcp's examples do): the full MCP path without
//! process start-up, built by the same composition root as `main`. Shared
//! by the benches and `tests/e2e_in_process.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use memory_mcp::app::App;
use memory_mcp::config::Settings;
use memory_mcp::gateway::{Gateway, UpstreamConfig};
use memory_mcp::mcp::{self, Server};
use memory_mcp::plugins::Registry;
use memory_mcp::sandbox::Sandbox;
use memory_mcp::sandbox::{Profile, ToolPolicy};
use rmcp::{RoleClient, ServiceExt, service::RunningService};

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

/// The settings of a server wired as `opts` says, with its data and
/// plugins in `dir`.
fn settings(dir: &std::path::Path, opts: Options) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        cache_dir: opts.cache.unwrap_or_else(|| dir.join("cache")),
        plugins_dir: dir.join("plugins"),
        limits: opts.profile.limits(),
        max_concurrency: opts.max_concurrency,
        max_queued: 1024,
        tool_policy: opts.policy,
        servers: opts.servers,
        audit_max_records: 1_000_000,
        embedding_providers: Default::default(),
        list_all_tools: false,
    }
}

/// Builds a server as `opts` says, with the composition root `main`
/// uses ([`App::build`]); data and plugins in a temporary directory. The
/// JS runtime has loaded when this returns.
pub async fn wire(opts: Options) -> anyhow::Result<Wired> {
    let dir = tempfile::tempdir()?;
    let app = App::build(settings(dir.path(), opts)).await?;
    let sandbox = app.sandbox().await?;
    Ok(Wired { server: app.server, sandbox, gateway: app.gateway, plugins: app.plugins, dir })
}

/// A temporary directory whose `cache` holds every component a server
/// wired as `opts` says loads, compiled (as `memory-mcp warm` does), so a
/// bench on that cache times no background compile (the JS runtime, the
/// TypeScript stripper, the plugin templates, the analyzer, embedders).
pub async fn warmed_cache(opts: Options) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    memory_mcp::warm::warm(&settings(dir.path(), Options { cache: Some(cache), ..opts })).await?;
    Ok(dir)
}

/// Wires a server as `opts` says and serves it to one in-process client.
pub async fn start_with(opts: Options) -> anyhow::Result<InProcess> {
    let Wired { server, sandbox, gateway, plugins, dir } = wire(opts).await?;
    let (a, b) = tokio::io::duplex(1 << 20);
    let (running, client) = tokio::join!(mcp::serve(server, a), ().serve(b));
    std::mem::forget(running?);
    Ok(InProcess { sandbox, gateway, plugins, client: client?, dir })
}

/// A server with the permissive profile, 4 executions at once, `policy`
/// for code's tool calls, and `servers` upstream; data, cache and plugins
/// in a temporary directory.
pub async fn start(policy: ToolPolicy, servers: BTreeMap<String, UpstreamConfig>) -> anyhow::Result<InProcess> {
    start_with(Options::new(policy, servers)).await
}
