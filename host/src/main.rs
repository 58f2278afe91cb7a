//! The `memory-mcp` binary: parses the command line, logs to stderr, and
//! serves MCP on stdio.

#![deny(clippy::unwrap_used)]

use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use memory_mcp::config::{CommonArgs, SandboxArgs, Settings};
use memory_mcp::embeddings::Embeddings;
use memory_mcp::learning::{AnalyzerSet, AnalyzersState, Learning, PatternStore};
use memory_mcp::mcp::{self, MemoryServer, RuntimeState, framing::DEFAULT_MAX_FRAME_BYTES};
use memory_mcp::memory::MemoryStore;
use memory_mcp::metrics::Metrics;
use memory_mcp::sandbox::artifacts::ArtifactCache;
use memory_mcp::sandbox::capabilities::Grants;
use memory_mcp::sandbox::policy::CompiledPolicy;
use memory_mcp::sandbox::tools::NoServers;
use memory_mcp::sandbox::{Sandbox, SandboxConfig};
use tokio::sync::watch;

/// MCP server over stdio: episodic memory, learning, and sandboxed code
/// execution (QuickJS in wasmtime).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Largest JSON-RPC message accepted on stdin, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES, value_name = "BYTES")]
    max_frame_bytes: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP on stdin/stdout (the default).
    Serve,
    /// Build the precompiled artifacts (JS runtime, pattern analyzer,
    /// embedders) into the cache and exit.
    Warm,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMORY_MCP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::resolve(&cli.common, &cli.sandbox)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings, cli.max_frame_bytes).await,
            Command::Warm => {
                let sandbox = load_sandbox(&settings, Arc::new(Metrics::new())).await?;
                let r = sandbox.load_report();
                eprintln!("js-runtime ready in {} ms (cache hit: {})", r.millis, r.cache_hit);
                let cache = ArtifactCache::new(&settings.cache_dir);
                let engine = memory_mcp::sandbox::engine::build_metered()?;
                let (_, r) = cache.load(&engine, "pattern-analyzer", memory_mcp::components::PATTERN_ANALYZER, None).await?;
                eprintln!("pattern-analyzer ready in {} ms (cache hit: {})", r.millis, r.cache_hit);
                use memory_mcp::components::{EMBEDDER_LOCAL, EMBEDDER_OLLAMA, EMBEDDER_OPENAI};
                for (name, bytes) in [("local", EMBEDDER_LOCAL), ("ollama", EMBEDDER_OLLAMA), ("openai", EMBEDDER_OPENAI)] {
                    let (_, r) = cache.load(&engine, &format!("embedder-{name}"), bytes, None).await?;
                    eprintln!("embedder-{name} ready in {} ms (cache hit: {})", r.millis, r.cache_hit);
                }
                Ok(())
            }
        }
    })
}

async fn load_sandbox(settings: &Settings, metrics: Arc<Metrics>) -> Result<Sandbox> {
    let policy = CompiledPolicy::new(settings.tool_policy.clone()).context("the [sandbox.tools] policy")?;
    let config = SandboxConfig {
        limits: settings.limits,
        max_concurrency: settings.max_concurrency,
        policy,
        dispatcher: Arc::new(NoServers),
        grants: Grants::TOOLS,
    };
    let cache = ArtifactCache::new(&settings.cache_dir);
    Sandbox::load(config, &cache, memory_mcp::components::JS_RUNTIME, metrics).await
}

async fn serve(settings: Settings, max_frame: usize) -> Result<()> {
    let data_dir = settings.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || MemoryStore::open(&data_dir))
        .await
        .context("opening the episode store")?
        .with_context(|| format!("opening the episode store in {}", settings.data_dir.display()))?;
    let store = Arc::new(store);
    let memory = store.clone();
    let patterns = tokio::task::spawn_blocking(move || PatternStore::open(&memory))
        .await
        .context("opening the pattern store")?
        .context("opening the pattern store")?;
    let patterns = Arc::new(patterns);
    let (memory, pats, dir, cache) =
        (store.clone(), patterns.clone(), settings.data_dir.clone(), ArtifactCache::new(&settings.cache_dir));
    let embeddings = tokio::task::spawn_blocking(move || Embeddings::open(memory, pats, &dir, cache))
        .await
        .context("opening the vector index")??;
    embeddings.spawn();
    let (analyzers_tx, analyzers_rx) = watch::channel(AnalyzersState::Loading);
    let learning = Learning::new(store.clone(), patterns, analyzers_rx);
    learning.spawn();
    let cache = ArtifactCache::new(&settings.cache_dir);
    let plugins_dir = settings.plugins_dir.clone();
    let memory = store.clone();
    tokio::spawn(async move {
        let loaded = AnalyzerSet::load(&cache, memory_mcp::components::PATTERN_ANALYZER, Some(&plugins_dir), memory).await;
        let state = match loaded {
            Ok(set) => {
                tracing::info!(plugins = set.plugins.len(), refused = set.rejected.len(), "pattern analyzers ready");
                AnalyzersState::Ready(Arc::new(set))
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "the pattern analyzers failed to load");
                AnalyzersState::Failed(format!("{e:#}"))
            }
        };
        let _ = analyzers_tx.send(state);
    });
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = watch::channel(RuntimeState::Loading);
    let loader_metrics = metrics.clone();
    // Load in the background so `initialize` is answered at once; tool
    // calls wait for the runtime.
    tokio::spawn(async move {
        let state = match load_sandbox(&settings, loader_metrics).await {
            Ok(s) => RuntimeState::Ready(Arc::new(s)),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "the JS runtime failed to load");
                RuntimeState::Failed(format!("{e:#}"))
            }
        };
        let _ = tx.send(state);
    });
    mcp::serve_stdio(MemoryServer::new(rx, metrics, learning, embeddings), max_frame).await
}
