//! The composition root: [`App::build`] makes the whole server from its
//! [`Settings`] in one place. `main` (stdio and `--http`), the tests that
//! build a server in-process and the benches all use it, so they run the
//! server as it is wired, not a copy of the wiring.
//!
//! Building is in two steps so stdio can answer `initialize` at once:
//! [`App::prepare`] (fast: the tool policy, the plugins registry listing
//! from verified manifests, metrics) and [`App::open`] (opens the episode
//! store and builds everything on it; the JS runtime, the analyzers and
//! the plugins then load in the background, and tool calls wait for them).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use rmcp::model::Tool;
use tokio::sync::watch;

use crate::config::Settings;
use crate::embeddings::Embeddings;
use crate::gateway::{Audit, Gateway};
use crate::learning::{AnalyzerSet, AnalyzersState, Learning, PatternStore};
use crate::mcp::{RuntimeState, Server};
use crate::memory::EpisodeStore;
use crate::metrics::Metrics;
use crate::plugins::{PluginDir, Registry};
use crate::sandbox::{CompiledPolicy, Grants, Sandbox, SandboxConfig};
use crate::wasm::ArtifactCache;

/// What the server needs before its store opens ([`App::prepare`]).
pub struct Prepared {
    /// The sandbox's tool policy (`[sandbox.tools]`).
    pub policy: Arc<CompiledPolicy>,
    /// The plugins registry, listing from verified manifests at once.
    pub plugins: Arc<Registry>,
    /// Execution counts and latencies.
    pub metrics: Arc<Metrics>,
    /// The built-in tools `tools/list` shows (the core ones, or all).
    pub listed: Vec<Tool>,
}

/// The server and the parts tests and benches reach into.
pub struct App {
    /// The MCP server (one per session: [`Server::for_session`]).
    pub server: Server,
    /// How code reaches tools (this server's and upstream ones).
    pub gateway: Arc<Gateway>,
    /// The plugins registry.
    pub plugins: Arc<Registry>,
    /// Execution counts and latencies.
    pub metrics: Arc<Metrics>,
}

impl App {
    /// Builds the whole server from `settings`: [`App::prepare`], then
    /// [`App::open`].
    pub async fn build(settings: Settings) -> Result<App> {
        let prepared = Self::prepare(&settings).await?;
        Self::open(settings, prepared).await
    }

    /// The fast part: the tool policy, the plugins directory (migrated
    /// once from the old flat layout, before either kind is read), the
    /// plugins registry (listing from verified manifests at once; their
    /// components compile once the runtime has loaded), and metrics.
    pub async fn prepare(settings: &Settings) -> Result<Prepared> {
        let policy = Arc::new(CompiledPolicy::new(settings.tool_policy.clone()).context("the [sandbox.tools] policy")?);
        let root = settings.plugins_dir.clone();
        let prepared = tokio::task::spawn_blocking(move || crate::plugins::layout::prepare(&root, true))
            .await
            .context("preparing the plugins directory")?;
        if let Err(e) = prepared {
            tracing::error!(dir = %settings.plugins_dir.display(), error = %e, "the plugins directory could not be prepared");
        }
        let tools = Server::tool_list();
        let names = tools.iter().map(|t| t.name.to_string()).collect();
        let plugins = Arc::new(Registry::new(PluginDir::new(&settings.plugins_dir), policy.clone(), names));
        let preload = plugins.clone();
        tokio::spawn(async move { preload.preload().await });
        let listed = if settings.list_all_tools {
            tools
        } else {
            tools.into_iter().filter(crate::mcp::listed_by_default).collect()
        };
        Ok(Prepared { policy, plugins, metrics: Arc::new(Metrics::new()), listed })
    }

    /// A gateway on `settings` with no server behind it (the CLI's `warm`
    /// and `tools export`): `memory.*` is listed but not callable.
    pub fn gateway(settings: &Settings, audit: Option<Arc<Audit>>) -> Result<Arc<Gateway>> {
        let policy = CompiledPolicy::new(settings.tool_policy.clone()).context("the [sandbox.tools] policy")?;
        Ok(Arc::new(Gateway::new(&settings.servers, Arc::new(policy), audit, Server::tool_list())?))
    }

    /// Loads the JS runtime (from the artifact cache, or snapshotted and
    /// compiled) into a sandbox whose tool calls go to `gateway`.
    pub async fn load_sandbox(settings: &Settings, gateway: Arc<Gateway>, metrics: Arc<Metrics>) -> Result<Sandbox> {
        let config = SandboxConfig {
            limits: settings.limits,
            max_concurrency: settings.max_concurrency,
            max_queued: settings.max_queued,
            policy: gateway.policy().as_ref().clone(),
            dispatcher: gateway,
            grants: Grants::TOOLS,
        };
        let cache = ArtifactCache::new(&settings.cache_dir);
        Sandbox::load(config, &cache, crate::components::JS_RUNTIME, metrics).await
    }

    /// The sandbox, once the JS runtime has loaded (waits for it).
    pub async fn sandbox(&self) -> Result<Arc<Sandbox>> {
        self.server.sandbox().await.map_err(anyhow::Error::msg)
    }

    /// Opens the episode store and builds everything on it: patterns, vectors,
    /// the audit, the gateway, learning, and the server; the JS runtime, the
    /// analyzers and the plugins load in the background from here.
    pub async fn open(settings: Settings, prepared: Prepared) -> Result<App> {
        let Prepared { policy, plugins, metrics, .. } = prepared;
        let data_dir = settings.data_dir.clone();
        let list_all_tools = settings.list_all_tools;
        // The search index is rebuilt in the background: the server answers at
        // once, and queries state how much of the store they cover meanwhile.
        let options = crate::memory::StoreOptions::default();
        let store = tokio::task::spawn_blocking(move || EpisodeStore::open_background(&data_dir, options))
            .await
            .context("opening the episode store")?
            .with_context(|| format!("opening the episode store in {}", settings.data_dir.display()))?;
        // The learned patterns load in the background too; what uses them waits.
        let patterns = PatternStore::open_background(&store).context("opening the pattern store")?;
        let (memory, pats, dir, cache) =
            (store.clone(), patterns.clone(), settings.data_dir.clone(), ArtifactCache::new(&settings.cache_dir));
        let providers = settings.embedding_providers.clone();
        let embeddings = tokio::task::spawn_blocking(move || Embeddings::open(memory, pats, &dir, cache, providers))
            .await
            .context("opening the vector index")??;
        embeddings.spawn();
        let audit = Arc::new(Audit::open(store.database(), settings.audit_max_records).context("opening the tool-call audit")?);
        let gateway = Arc::new(Gateway::new(&settings.servers, policy, Some(audit), Server::tool_list())?);
        let (analyzers_tx, analyzers_rx) = watch::channel(AnalyzersState::Loading);
        let learning = Learning::new(store.clone(), patterns, analyzers_rx);
        learning.spawn();
        let cache = ArtifactCache::new(&settings.cache_dir);
        let plugins_dir = settings.plugins_dir.clone();
        let memory = store.clone();
        tokio::spawn(async move {
            let loaded = AnalyzerSet::load(&cache, crate::components::PATTERN_ANALYZER, Some(&plugins_dir), memory).await;
            let state = match loaded {
                Ok(set) => {
                    tracing::info!(installed = set.installed.len(), refused = set.rejected.len(), "pattern analyzers ready");
                    AnalyzersState::Ready(Arc::new(set))
                }
                Err(e) => {
                    crate::shutdown::failed("the pattern analyzers failed to load", &format!("{e:#}"));
                    AnalyzersState::Failed(format!("{e:#}"))
                }
            };
            let _ = analyzers_tx.send(state);
        });
        let loader_plugins = plugins.clone();
        let (tx, rx) = watch::channel(RuntimeState::Loading);
        let loader_metrics = metrics.clone();
        let loader_gateway = gateway.clone();
        // Load in the background so `initialize` is answered at once; tool
        // calls wait for the runtime.
        tokio::spawn(async move {
            let state = match Self::load_sandbox(&settings, loader_gateway, loader_metrics).await {
                Ok(s) => {
                    let s = Arc::new(s);
                    // TypeScript support loads after JavaScript is ready.
                    let ts = s.clone();
                    tokio::spawn(async move {
                        if let Err(e) = ts.typescript().await {
                            crate::shutdown::failed("the TypeScript stripper failed to load", &e.to_string());
                        }
                        // And the plugin templates, so a build does not wait for them.
                        if let Err(e) = crate::plugins::Builder::in_sandbox(&ts).warm().await {
                            crate::shutdown::failed("the plugin templates failed to load", &format!("{e:#}"));
                        }
                    });
                    // Then the plugins, which are served as tools once loaded.
                    let sandbox = s.clone();
                    tokio::spawn(async move {
                        loader_plugins.sync(&sandbox).await;
                        loader_plugins.spawn_watcher(sandbox);
                    });
                    RuntimeState::Ready(s)
                }
                Err(e) => {
                    crate::shutdown::failed("the JS runtime failed to load", &format!("{e:#}"));
                    RuntimeState::Failed(format!("{e:#}"))
                }
            };
            let _ = tx.send(state);
        });
        let server = Server::new(rx, metrics.clone(), learning, embeddings, gateway.clone(), plugins.clone())
            .with_all_tools_listed(list_all_tools);
        Ok(App { server, gateway, plugins, metrics })
    }
}
