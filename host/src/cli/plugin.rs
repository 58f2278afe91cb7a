//! `memory-mcp plugin …`: build, list, inspect, verify and remove plugins
//! in the plugins directory. None of it needs the data dir, so it works
//! while a server runs; the server's watcher picks the changes up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use crate::config::Settings;
use crate::plugins::{BuildRequest, Builder, NameError, PluginDir, PluginError, PluginPolicy, Stage, inspect};
use crate::sandbox::Language;
use crate::wasm::ArtifactCache;

/// `println!` that stops quietly when stdout is closed (`… | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `memory-mcp plugin ...`: build, list, inspect, verify and remove JS
/// tool plugins in the plugins directory.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Compile a JavaScript or TypeScript file (an async function body, as
    /// execute_agent_code takes) into a plugin: NAME.wasm, its policy, its
    /// source and a manifest with their blake3 checksums.
    Build {
        /// The script: `.js` or `.ts`.
        file: PathBuf,
        /// The plugin's tool name: a lowercase letter, then lowercase
        /// letters, digits, `_` or `-`.
        #[arg(long)]
        name: String,
        /// What the tool does; agents read it.
        #[arg(long)]
        description: String,
        /// A JSON Schema file for the tool's arguments (default: any object).
        #[arg(long, value_name = "FILE")]
        input_schema: Option<PathBuf>,
        /// A policy file (TOML; see README "Plugins"). Default: no tools,
        /// the server's limits.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Replace a plugin of the same name.
        #[arg(long)]
        force: bool,
    },
    /// List the plugins, each verified.
    List,
    /// Show a plugin's manifest, policy, imports and world (as
    /// `wasm-tools component wit` prints it).
    Info {
        /// The plugin's name.
        name: String,
    },
    /// Check every plugin (or one) against its manifest; exits 1 if any
    /// is refused.
    Verify {
        /// The plugin to check (default: every plugin).
        name: Option<String>,
    },
    /// Remove a plugin's files (the manifest first).
    Remove {
        /// The plugin's name.
        name: String,
    },
}

/// Runs one `plugin` subcommand against `settings.plugins_dir`, migrating
/// a flat plugins directory first; prints to stdout.
pub async fn run(settings: &Settings, command: PluginCommand) -> Result<()> {
    if let Some(m) = crate::plugins::layout::prepare(&settings.plugins_dir, false)? {
        eprintln!(
            "migrated {} to tools/ and analyzers/ ({} plugins, {} analyzers)",
            settings.plugins_dir.display(),
            m.tools.len(),
            m.analyzers.len()
        );
    }
    let dir = PluginDir::new(&settings.plugins_dir);
    match command {
        PluginCommand::Build { file, name, description, input_schema, policy, force } => {
            let request = request(&file, name, description, input_schema.as_deref(), policy.as_deref())?;
            if dir.held_by_analyzer(&request.name) {
                return Err(PluginError::from(NameError::TakenByAnalyzer(request.name)).into());
            }
            if !force && dir.manifest_path(&request.name).exists() {
                bail!("a plugin named {:?} exists in {}; pass --force to replace it", request.name, dir.path().display());
            }
            build(settings, &dir, request).await
        }
        PluginCommand::List => {
            let names = dir.names()?;
            if names.is_empty() {
                eprintln!("no plugins in {}", dir.path().display());
            }
            for name in names {
                match dir.verify(&name) {
                    Ok(v) => say!(
                        "{name}\tok\t{}\t{}\t{} bytes\ttools: {}\t{}",
                        v.manifest.world.as_str(),
                        lang(v.manifest.language),
                        v.manifest.wasm.bytes,
                        if v.policy.tools.allow.is_empty() { "none".into() } else { v.policy.tools.allow.join(",") },
                        v.manifest.description.lines().next().unwrap_or_default()
                    ),
                    Err(e) => say!("{name}\trefused\t{e}"),
                }
            }
            Ok(())
        }
        PluginCommand::Info { name } => {
            let v = dir.verify(&name)?;
            say!("{}", serde_json::to_string_pretty(&v.manifest)?);
            say!("\n# {}\n{}", v.manifest.policy.file, v.policy.to_toml());
            say!("# imports\n{}\n", inspect::imports(&v.wasm)?.join("\n"));
            say!("# world (wasm-tools component wit)\n{}", inspect::wit(&v.wasm)?);
            Ok(())
        }
        PluginCommand::Verify { name } => {
            let names = match name {
                Some(n) => vec![n],
                None => dir.names()?,
            };
            let mut refused = 0;
            for name in &names {
                match dir.verify(name) {
                    Ok(v) => say!("{name}: ok (wasm blake3 {})", v.manifest.wasm.blake3),
                    Err(e) => {
                        refused += 1;
                        say!("{name}: refused: {e}");
                    }
                }
            }
            if refused > 0 {
                bail!("{refused} of {} plugins refused", names.len());
            }
            Ok(())
        }
        PluginCommand::Remove { name } => {
            dir.remove(&name)?;
            eprintln!("removed {name} from {}", dir.path().display());
            Ok(())
        }
    }
}

fn lang(l: Language) -> &'static str {
    match l {
        Language::JavaScript => "javascript",
        Language::TypeScript => "typescript",
    }
}

fn request(
    file: &Path,
    name: String,
    description: String,
    schema: Option<&Path>,
    policy: Option<&Path>,
) -> Result<BuildRequest> {
    if crate::mcp::Server::tool_names().contains(&name) {
        return Err(PluginError::from(NameError::Reserved(name)).into());
    }
    let language = match file.extension().and_then(|e| e.to_str()) {
        Some("js" | "mjs") => Language::JavaScript,
        Some("ts" | "mts") => Language::TypeScript,
        _ => bail!("{}: expected a .js or .ts file", file.display()),
    };
    let source = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let input_schema = match schema {
        Some(p) => Some(
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("{} is not JSON", p.display()))?,
        ),
        None => None,
    };
    let policy = match policy {
        Some(p) => PluginPolicy::parse(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("in {}", p.display()))?,
        None => PluginPolicy::default(),
    };
    Ok(BuildRequest { name, description, source, language, input_schema, policy })
}

async fn build(settings: &Settings, dir: &PluginDir, request: BuildRequest) -> Result<()> {
    let started = Instant::now();
    // The server's engine settings, so the precompiled artifact is the one
    // a server loads.
    let engine = crate::wasm::build_engine(crate::wasm::Metering::Epoch { max_concurrency: settings.max_concurrency, max_memory_bytes: settings.limits.memory_bytes })?;
    let cache = ArtifactCache::new(&settings.cache_dir);
    let bar = indicatif::ProgressBar::new(Stage::COUNT + 2);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let name = request.name.clone();
    let progress = |stage: Stage| {
        bar.set_message(stage.label());
        bar.inc(1);
    };
    // The templates are prepared (once, then cached) before the clock
    // starts: the build's own budget is the plugin's limits.
    let builder = Builder::embedded(&engine, &cache, settings.limits);
    builder.warm().await?;
    let deadline = Instant::now() + builder.limits_for(&request.policy).timeout;
    let built = builder.build(request, deadline, &progress).await?;
    bar.set_message("precompiling for this machine (cached for the server)");
    bar.inc(1);
    cache.load(&engine, &format!("plugin-{name}"), &built.wasm, None).await.context("precompiling")?;
    bar.set_message("writing files");
    bar.inc(1);
    dir.write(&built)?;
    bar.finish_and_clear();
    let m = &built.manifest;
    eprintln!(
        "built {name} ({}, {} bytes, blake3 {}) in {:.1} s into {}",
        m.world.as_str(),
        m.wasm.bytes,
        &m.wasm.blake3[..16],
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    Ok(())
}
