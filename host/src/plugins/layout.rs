//! The plugins directory's layout: one namespace, two kinds, each in its
//! own subdirectory, so neither can overwrite the other's files.
//!
//! ```text
//! PLUGINS_DIR/
//!   tools/      JS tool plugins: NAME.wasm NAME.policy.toml NAME.js|ts NAME.plugin.json
//!   analyzers/  pattern analyzers: NAME.wasm NAME.policy.toml NAME.analyzer.json
//! ```
//!
//! A name is taken by at most one kind: `save_plugin`, `plugin build` and
//! `analyzer install` refuse a name the other kind holds.
//!
//! A directory in the old flat layout (everything side by side) is
//! migrated once, at the server's start or a CLI command's: JS plugins
//! (the `.wasm` with a `NAME.plugin.json`) move to `tools/` as they are,
//! other `.wasm` files are analyzers and move to `analyzers/` with a
//! manifest computed from their current files (the operator trusted them
//! before). Files move into staging directories first, which are renamed
//! into place last, so an interrupted migration resumes at the next start.
//! Once `tools/` and `analyzers/` exist, loose files at the top are
//! ignored (with a warning), never migrated: an analyzer dropped in later
//! must be installed.

use std::path::{Path, PathBuf};

use super::analyzer_dir::{ANALYZER_MANIFEST_SUFFIX, AnalyzerDir};
use super::manifest::MANIFEST_SUFFIX;
use super::{PluginError, name};

/// JS tool plugins' subdirectory.
pub const TOOLS: &str = "tools";
/// Pattern analyzers' subdirectory.
pub const ANALYZERS: &str = "analyzers";
const STAGING_TOOLS: &str = ".tools.migrating";
const STAGING_ANALYZERS: &str = ".analyzers.migrating";

/// The JS tool plugins' directory under plugins directory `root`.
pub fn tools_dir(root: &Path) -> PathBuf {
    root.join(TOOLS)
}

/// The pattern analyzers' directory under plugins directory `root`.
pub fn analyzers_dir(root: &Path) -> PathBuf {
    root.join(ANALYZERS)
}

/// What a migration moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migration {
    /// JS plugins moved to `tools/`.
    pub tools: Vec<String>,
    /// Analyzers moved to `analyzers/`, each with a new manifest.
    pub analyzers: Vec<String>,
    /// Top-level entries left where they were, and why.
    pub left: Vec<(String, String)>,
}

/// Migrates a flat plugins directory once (see the module docs), then
/// creates the two subdirectories when `create` is set. `Ok(None)` when
/// there was nothing to migrate.
pub fn prepare(root: &Path, create: bool) -> Result<Option<Migration>, PluginError> {
    let io = |what: &str, p: &Path, e: std::io::Error| PluginError::Io(format!("{what} {}: {e}", p.display()));
    let (tools, analyzers) = (tools_dir(root), analyzers_dir(root));
    // Never migrated into, or created through, a symlink.
    for d in [&tools, &analyzers] {
        super::file::check_subdir(d)?;
    }
    let migrated = if tools.is_dir() && analyzers.is_dir() {
        warn_loose(root);
        None
    } else if needs_migration(root) {
        let m = migrate(root)?;
        tracing::info!(
            dir = %root.display(),
            tools = ?m.tools,
            analyzers = ?m.analyzers,
            left = ?m.left,
            "migrated the flat plugins directory into tools/ and analyzers/ (analyzers got manifests of their current files)"
        );
        Some(m)
    } else {
        None
    };
    if create {
        for d in [&tools, &analyzers] {
            std::fs::create_dir_all(d).map_err(|e| io("creating", d, e))?;
        }
    }
    Ok(migrated)
}

/// Top-level files of the flat layout, or an interrupted migration.
fn needs_migration(root: &Path) -> bool {
    root.join(STAGING_TOOLS).exists()
        || root.join(STAGING_ANALYZERS).exists()
        || top_level(root).iter().any(|(f, _)| f.ends_with(".wasm") || f.ends_with(MANIFEST_SUFFIX))
}

/// The top-level entries' names and whether each is a regular file (not
/// following symlinks).
fn top_level(root: &Path) -> Vec<(String, bool)> {
    let Ok(rd) = std::fs::read_dir(root) else { return Vec::new() };
    let mut out: Vec<(String, bool)> = rd
        .filter_map(|e| {
            let e = e.ok()?;
            let regular = e.file_type().ok()?.is_file();
            Some((e.file_name().into_string().ok()?, regular))
        })
        .collect();
    out.sort();
    out
}

fn warn_loose(root: &Path) {
    for (f, _) in top_level(root) {
        if f.ends_with(".wasm") || f.ends_with(MANIFEST_SUFFIX) || f.ends_with(".policy.toml") {
            tracing::warn!(
                file = %root.join(&f).display(),
                "ignored: plugins live in tools/ and analyzers/; install an analyzer with `memory-mcp analyzer install`"
            );
        }
    }
}

fn migrate(root: &Path) -> Result<Migration, PluginError> {
    let io = |what: &str, p: &Path, e: std::io::Error| PluginError::Io(format!("{what} {}: {e}", p.display()));
    let (st, sa) = (root.join(STAGING_TOOLS), root.join(STAGING_ANALYZERS));
    for d in [&st, &sa] {
        std::fs::create_dir_all(d).map_err(|e| io("creating", d, e))?;
    }
    let mut m = Migration::default();
    let entries = top_level(root);
    let regular = |f: &str| entries.iter().any(|(g, r)| g == f && *r);
    let mv = |file: &str, to: &Path| -> Result<bool, PluginError> {
        if !regular(file) {
            return Ok(false);
        }
        let from = root.join(file);
        std::fs::rename(&from, to.join(file)).map_err(|e| io("moving", &from, e))?;
        Ok(true)
    };
    // JS plugins: their files, then the manifest.
    for (f, _) in &entries {
        let Some(n) = f.strip_suffix(MANIFEST_SUFFIX) else { continue };
        if !regular(f) {
            m.left.push((f.clone(), "not a regular file".into()));
            continue;
        }
        for ext in ["wasm", "policy.toml", "js", "ts"] {
            mv(&format!("{n}.{ext}"), &st)?;
        }
        mv(f, &st)?;
        m.tools.push(n.into());
    }
    // Analyzers: every other `.wasm`, with its policy.
    for (f, _) in &entries {
        let Some(n) = f.strip_suffix(".wasm") else { continue };
        if m.tools.iter().any(|t| t == n) {
            continue;
        }
        if !regular(f) {
            m.left.push((f.clone(), "not a regular file".into()));
            continue;
        }
        if let Err(e) = name::validate(n) {
            m.left.push((f.clone(), e.to_string()));
            continue;
        }
        mv(&format!("{n}.policy.toml"), &sa)?;
        mv(f, &sa)?;
    }
    // Every analyzer in staging without a manifest (this run's, or an
    // interrupted run's) gets one.
    let staging = AnalyzerDir::new(&sa);
    for f in top_level(&sa).into_iter().filter(|(_, r)| *r).map(|(f, _)| f) {
        let Some(n) = f.strip_suffix(".wasm") else { continue };
        if sa.join(format!("{n}{ANALYZER_MANIFEST_SUFFIX}")).exists() {
            continue;
        }
        let wasm = super::file::read_untrusted(&sa.join(&f), super::file::MAX_WASM_BYTES)?;
        // No policy file meant the defaults, which grant nothing.
        let policy_path = sa.join(format!("{n}.policy.toml"));
        let policy = match super::file::read_untrusted(&policy_path, super::file::MAX_POLICY_BYTES) {
            Ok(p) => p,
            Err(super::file::ReadError::Missing(_)) => format!("version = {}\n", super::analyzer_policy::POLICY_VERSION).into_bytes(),
            Err(e) => return Err(e.into()),
        };
        staging.install(n, &wasm, &policy, "migrated from the flat plugins directory")?;
        m.analyzers.push(n.into());
    }
    // Into place: the subdirectories appear whole.
    for (from, to) in [(&sa, analyzers_dir(root)), (&st, tools_dir(root))] {
        if to.exists() {
            // An interrupted run renamed this one already; merge what is left.
            for (f, _) in top_level(from) {
                std::fs::rename(from.join(&f), to.join(&f)).map_err(|e| io("moving", &from.join(&f), e))?;
            }
            std::fs::remove_dir(from).map_err(|e| io("removing", from, e))?;
        } else {
            std::fs::rename(from, &to).map_err(|e| io("renaming", from, e))?;
        }
    }
    Ok(m)
}

/// Whether `name` is taken in `root` by a JS tool plugin.
pub fn held_by_tool(root: &Path, name: &str) -> bool {
    let t = tools_dir(root);
    std::fs::symlink_metadata(t.join(format!("{name}{MANIFEST_SUFFIX}"))).is_ok()
        || std::fs::symlink_metadata(t.join(format!("{name}.wasm"))).is_ok()
}

/// Whether `name` is taken in `root` by an analyzer.
pub fn held_by_analyzer(root: &Path, name: &str) -> bool {
    AnalyzerDir::new(analyzers_dir(root)).holds(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_directory_is_migrated_once_and_loose_files_later_are_not() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for (f, body) in [
            ("slow.wasm", "analyzer"),
            ("slow.policy.toml", "version = 1\n"),
            ("bare.wasm", "analyzer without a policy"),
            ("wc.wasm", "js plugin"),
            ("wc.policy.toml", "p"),
            ("wc.js", "return 1"),
            ("wc.plugin.json", "{}"),
        ] {
            std::fs::write(r.join(f), body).expect("write");
        }
        std::os::unix::fs::symlink("/dev/zero", r.join("zero.wasm")).expect("symlink");
        let m = prepare(r, true).expect("migrate").expect("migrated");
        assert_eq!(m.tools, ["wc"]);
        assert_eq!(m.analyzers, ["bare", "slow"]);
        assert_eq!(m.left.len(), 1);
        assert_eq!(std::fs::read_to_string(r.join("tools/wc.js")).expect("moved"), "return 1");
        let dir = AnalyzerDir::new(analyzers_dir(r));
        assert_eq!(dir.verify("slow").expect("manifest").wasm, b"analyzer");
        assert_eq!(dir.verify("bare").expect("manifest").policy, crate::plugins::analyzer_policy::AnalyzerPolicy::default());
        assert!(held_by_tool(r, "wc") && held_by_analyzer(r, "slow") && !held_by_analyzer(r, "wc"));
        // Once: a file dropped at the top later is not migrated.
        std::fs::write(r.join("late.wasm"), "x").expect("write");
        assert_eq!(prepare(r, true).expect("again"), None);
        assert!(!held_by_analyzer(r, "late"));
    }
}
