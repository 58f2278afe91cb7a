//! The `memory-mcp` binary: parses the command line, logs to stderr, and
//! serves MCP on stdio.

#![deny(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use memory_mcp::app::App;
use memory_mcp::config::{CommonArgs, SandboxArgs, Settings};
use memory_mcp::gateway::{Audit, AuditFilter};
use memory_mcp::mcp::{self, DEFAULT_MAX_FRAME_BYTES};
use memory_mcp::memory::DataDirLock;

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
    /// Serve MCP on stdin/stdout (the default), or over Streamable HTTP
    /// with `--http ADDR`.
    Serve(memory_mcp::http::ServeArgs),
    /// Build the precompiled artifacts (JS runtime, pattern analyzer,
    /// embedders) into the cache and exit.
    Warm,
    /// The MCP tools sandboxed code can call.
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Plugins: agent JS/TS compiled into components served as tools.
    Plugin {
        #[command(subcommand)]
        command: memory_mcp::cli::PluginCommand,
    },
    /// Third-party pattern analyzers: install, list, verify, remove.
    Analyzer {
        #[command(subcommand)]
        command: memory_mcp::cli::AnalyzerCommand,
    },
    /// The local embedding model's weights: install, verify.
    Model {
        #[command(subcommand)]
        command: memory_mcp::models::ModelCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// Write one TypeScript declaration per tool (`DIR/<server>/<tool>.d.ts`)
    /// and `DIR/index.d.ts`, most used first. Connects to every configured
    /// upstream server.
    Export {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the tool-call audit as JSON lines, newest first. (While a
    /// server holds the data dir, use its `get_tool_audit` tool instead.)
    Audit {
        /// Only calls made by this execution.
        #[arg(long, value_name = "UUID")]
        execution: Option<uuid::Uuid>,
        /// Only calls to this server.
        #[arg(long)]
        server: Option<String>,
        /// Only calls to this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only this outcome (ok, tool_error, unavailable, invalid_arguments, denied).
        #[arg(long)]
        outcome: Option<String>,
        /// Most records.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// The default log filter: our own INFO, and only errors from rmcp, which
/// logs every error reply (a client's unknown method, say) as a WARN.
const DEFAULT_LOG: &str = "info,rmcp=error";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMORY_MCP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    // Errors end the process with their chain of causes, never a backtrace.
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-mcp: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let settings = Settings::resolve(&cli.common, &cli.sandbox)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve(Default::default())) {
            Command::Serve(args) => {
                // Checked before the data dir is opened: a refused address
                // or a bad token file stops here.
                let token = std::env::var(memory_mcp::http::TOKEN_ENV).ok();
                let http = memory_mcp::http::HttpOptions::from_args(&args, token, cli.max_frame_bytes)?;
                serve(settings, cli.max_frame_bytes, http).await
            }
            Command::Warm => {
                for w in memory_mcp::warm::warm(&settings).await? {
                    eprintln!("{w}");
                }
                Ok(())
            }
            Command::Tools { command } => tools_command(&settings, command).await,
            Command::Plugin { command } => memory_mcp::cli::run_plugin(&settings, command).await,
            Command::Analyzer { command } => memory_mcp::cli::run_analyzer(&settings, command).await,
            Command::Model { command } => memory_mcp::models::run_model(&settings.data_dir, command).await,
        }
    });
    // Whatever is still in flight now fails because of the shutdown. A
    // task torn down mid-flight can panic inside tokio (a timer made while
    // the runtime stops); that is the exit's doing, so it is logged at
    // debug instead of printing a backtrace into the client's log pane.
    memory_mcp::shutdown::begin();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if memory_mcp::shutdown::in_progress() {
            tracing::debug!(panic = %info, "a task panicked while the runtime shut down");
        } else {
            default_hook(info);
        }
    }));
    drop(runtime);
    result
}

/// The audit of an existing data dir, opened directly (not through the
/// episode store, which would rebuild its indexes).
fn open_audit(settings: &Settings) -> Result<Option<Arc<Audit>>> {
    let path = settings.data_dir.join("episodes.fjall");
    if !path.exists() {
        return Ok(None);
    }
    let db = match fjall::Database::builder(&path).open() {
        Ok(db) => db,
        Err(fjall::Error::Locked) => anyhow::bail!(
            "the data dir {} is in use by a running memory-mcp; ask it with the get_tool_audit tool",
            settings.data_dir.display()
        ),
        Err(e) => return Err(e).context("opening the data dir"),
    };
    Ok(Some(Arc::new(Audit::open(&db, settings.audit_max_records)?)))
}

async fn tools_command(settings: &Settings, command: ToolsCommand) -> Result<()> {
    match command {
        ToolsCommand::Export { out } => {
            let audit = match open_audit(settings) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("{e:#}; tools are ordered by name only");
                    None
                }
            };
            let gateway = App::gateway(settings, audit)?;
            let catalog = gateway.catalog().await;
            for s in catalog.servers.iter().filter(|s| s.state == "down") {
                eprintln!("warning: server `{}` is unavailable: {}", s.server, s.error.as_deref().unwrap_or(""));
            }
            let n = memory_mcp::gateway::export(&catalog, &gateway.usage(), &out)?;
            eprintln!("wrote {n} tool declarations and index.d.ts to {}", out.display());
            Ok(())
        }
        ToolsCommand::Audit { execution, server, tool, outcome, limit } => {
            let Some(audit) = open_audit(settings)? else {
                anyhow::bail!("no data in {}", settings.data_dir.display());
            };
            // The operator's command: every principal's records.
            let filter = AuditFilter { execution_id: execution, server, tool, outcome, principal: None };
            let mut stdout = std::io::stdout().lock();
            for r in audit.read(&filter, limit)? {
                use std::io::Write as _;
                writeln!(stdout, "{}", serde_json::to_string(&r)?)?;
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings, max_frame: usize, http: Option<memory_mcp::http::HttpOptions>) -> Result<()> {
    // The data dir is claimed first (a second server is refused at once);
    // over stdio the store then opens in the background while `initialize`
    // and `tools/list` are answered (`mcp::starting`).
    let _claimed = DataDirLock::acquire(&settings.data_dir)
        .with_context(|| format!("opening the episode store in {}", settings.data_dir.display()))?;
    let prepared = App::prepare(&settings).await?;
    match http {
        Some(options) => memory_mcp::http::serve(App::open(settings, prepared).await?.server, options).await,
        None => {
            let (listed, plugins, metrics) = (prepared.listed.clone(), prepared.plugins.clone(), prepared.metrics.clone());
            let core = async move { App::open(settings, prepared).await.map(|app| app.server) };
            mcp::serve_stdio(core, listed, plugins, metrics, max_frame).await
        }
    }
}
