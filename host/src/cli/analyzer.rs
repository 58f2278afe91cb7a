//! `memory-mcp analyzer …`: install, list, verify and remove third-party
//! pattern analyzers in `PLUGINS_DIR/analyzers/`. `install` is how an
//! analyzer gets there: it copies the component and its policy and writes
//! their manifest (blake3) last. A server loads analyzers at start.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use crate::config::Settings;
use crate::learning::ANALYZER_EXPORT;
use crate::plugins::analyzer_dir::{AnalyzerDir, Entry, entry_name, unmanifested_reason};
use crate::plugins::analyzer_policy::AnalyzerPolicy;
use crate::plugins::{MAX_POLICY_BYTES, MAX_WASM_BYTES, NameError, PluginError, inspect, layout, read_named, validate_name};

/// `println!` that stops quietly when stdout is closed (`… | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `memory-mcp analyzer ...`: install, list, verify and remove
/// third-party pattern analyzers in the plugins directory.
#[derive(Debug, Subcommand)]
pub enum AnalyzerCommand {
    /// Install a pattern analyzer component (it exports
    /// memory-mcp:patterns/analyzer@0.1.0): copies FILE and its policy into
    /// the plugins directory's analyzers/ and writes their manifest, with
    /// blake3 checksums, last. Servers load it at their next start.
    Install {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The analyzer's name in the plugins directory (default: the file's
        /// stem): a lowercase letter, then lowercase letters, digits, `_` or `-`.
        #[arg(long)]
        name: Option<String>,
        /// Its policy (TOML; see README "Third-party analyzers"). Default:
        /// no grants, the default limits. Limits above the server's
        /// ceilings are clamped.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Replace an analyzer of the same name.
        #[arg(long)]
        force: bool,
    },
    /// List the installed analyzers, each verified against its manifest.
    List,
    /// Check every analyzer (or one) against its manifest; exits 1 if any
    /// is refused.
    Verify {
        /// The analyzer to check (default: every analyzer).
        name: Option<String>,
    },
    /// Remove an analyzer's files (the manifest first).
    Remove {
        /// The analyzer's name.
        name: String,
    },
}

/// Runs one `analyzer` subcommand against `settings.plugins_dir`,
/// migrating a flat plugins directory first; prints to stdout.
pub async fn run(settings: &Settings, command: AnalyzerCommand) -> Result<()> {
    let root = &settings.plugins_dir;
    if let Some(m) = layout::prepare(root, false)? {
        eprintln!("migrated {} to tools/ and analyzers/ ({} plugins, {} analyzers)", root.display(), m.tools.len(), m.analyzers.len());
    }
    let dir = AnalyzerDir::new(layout::analyzers_dir(root));
    match command {
        AnalyzerCommand::Install { file, name, policy, force } => {
            let name = match name {
                Some(n) => n,
                None => file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string(),
            };
            validate_name(&name).map_err(PluginError::from)?;
            if layout::held_by_tool(root, &name) {
                return Err(PluginError::from(NameError::TakenByTool(name)).into());
            }
            if !force && dir.holds(&name) {
                bail!("an analyzer named {name:?} is installed in {}; pass --force to replace it", dir.path().display());
            }
            let wasm = read_named(&file, MAX_WASM_BYTES).map_err(PluginError::from)?;
            inspect::validate(&wasm).with_context(|| format!("{}", file.display()))?;
            if !inspect::exports(&wasm)?.iter().any(|e| e == ANALYZER_EXPORT) {
                bail!("{} does not export {ANALYZER_EXPORT}: it is not a pattern analyzer", file.display());
            }
            let policy_text = match &policy {
                Some(p) => String::from_utf8(read_named(p, MAX_POLICY_BYTES).map_err(PluginError::from)?)
                    .with_context(|| format!("{} is not UTF-8", p.display()))?,
                None => AnalyzerPolicy::default().to_toml(),
            };
            let shown = policy.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the default policy".into());
            let (_, clamped) = AnalyzerPolicy::parse(&policy_text, &shown)?;
            for note in clamped {
                eprintln!("warning: {shown}: {note}");
            }
            let m = dir.install(&name, &wasm, policy_text.as_bytes(), "analyzer install")?;
            eprintln!(
                "installed analyzer {name} ({} bytes, blake3 {}) into {}; servers load it at their next start",
                m.wasm.bytes,
                &m.wasm.blake3[..16],
                dir.path().display()
            );
            Ok(())
        }
        AnalyzerCommand::List => {
            let entries = dir.entries()?;
            if entries.is_empty() {
                eprintln!("no analyzers in {}", dir.path().display());
            }
            for e in entries {
                let n = entry_name(&e);
                match &e {
                    Entry::Unmanifested(_) => say!("{n}\trefused\t{}", unmanifested_reason(&dir, n)),
                    Entry::Installed(_) => match dir.verify(n) {
                        Ok(v) => say!(
                            "{n}\tok\t{} bytes\tblake3 {}\tstore: {}\tlimits: {}",
                            v.manifest.wasm.bytes,
                            &v.manifest.wasm.blake3[..16],
                            v.policy.grants.store,
                            serde_json::to_string(&v.policy.limits).unwrap_or_default()
                        ),
                        Err(e) => say!("{n}\trefused\t{e}"),
                    },
                }
            }
            Ok(())
        }
        AnalyzerCommand::Verify { name } => {
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => dir.entries()?.iter().map(|e| entry_name(e).to_string()).collect(),
            };
            let mut refused = 0;
            for n in &names {
                match dir.verify(n) {
                    Ok(v) => say!("{n}: ok (wasm blake3 {})", v.manifest.wasm.blake3),
                    Err(e) => {
                        refused += 1;
                        let why = if dir.wasm_path(n).exists() && !dir.manifest_path(n).exists() {
                            unmanifested_reason(&dir, n)
                        } else {
                            e.to_string()
                        };
                        say!("{n}: refused: {why}");
                    }
                }
            }
            if refused > 0 {
                bail!("{refused} of {} analyzers refused", names.len());
            }
            Ok(())
        }
        AnalyzerCommand::Remove { name } => {
            dir.remove(&name)?;
            eprintln!("removed analyzer {name} from {}", dir.path().display());
            Ok(())
        }
    }
}
