//! The analyzers directory (`PLUGINS_DIR/analyzers/`): each third-party
//! pattern analyzer is `NAME.wasm`, its policy `NAME.policy.toml` and
//! `NAME.analyzer.json`, the manifest with both files' blake3. As for JS
//! plugins, writes are atomic and the manifest goes last, removal takes it
//! first, and every file is checked against it before the analyzer loads.
//! A `.wasm` dropped in without a manifest is refused, with the command
//! that installs it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{MAX_MANIFEST_BYTES, MAX_POLICY_BYTES, MAX_WASM_BYTES, check_subdir, read_untrusted};
use super::manifest::FileSum;
use super::{PluginError, name};
use super::analyzer_policy::AnalyzerPolicy;
use crate::wasm::write_atomic;

/// The analyzer manifest's suffix.
pub const ANALYZER_MANIFEST_SUFFIX: &str = ".analyzer.json";
/// The most analyzers considered (the first, by name): however many files
/// are dropped in, a bounded number is verified, compiled and run.
pub const MAX_ANALYZERS: usize = 100;
/// The analyzer manifest format this build reads.
pub const ANALYZER_MANIFEST_FORMAT: u32 = 1;

/// `NAME.analyzer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerManifest {
    /// Manifest format; must be 1.
    pub format: u32,
    /// The analyzer's name in the plugins directory: its files' stem.
    pub name: String,
    /// The component (`NAME.wasm`).
    pub wasm: FileSum,
    /// Its policy (`NAME.policy.toml`).
    pub policy: FileSum,
    /// What wrote the manifest: `analyzer install` or the migration of a
    /// flat plugins directory, and the memory-mcp version.
    pub installed_by: String,
}

impl AnalyzerManifest {
    /// The manifest for analyzer `name` with these component and policy
    /// bytes (their sizes and blake3), written by `how` (`analyzer install` or
    /// the migration) and this memory-mcp version.
    pub fn new(name: &str, wasm: &[u8], policy: &[u8], how: &str) -> Self {
        Self {
            format: ANALYZER_MANIFEST_FORMAT,
            name: name.into(),
            wasm: FileSum::of(format!("{name}.wasm"), wasm),
            policy: FileSum::of(format!("{name}.policy.toml"), policy),
            installed_by: format!("memory-mcp {} ({how})", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The manifest as the pretty JSON file holds it, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// An analyzer read back from disk, every file checked against its manifest.
#[derive(Debug, Clone)]
pub struct VerifiedAnalyzer {
    /// Its manifest, as read.
    pub manifest: AnalyzerManifest,
    /// The component's bytes, matching the manifest's checksum.
    pub wasm: Vec<u8>,
    /// Its policy, parsed and clamped to the server's ceilings.
    pub policy: AnalyzerPolicy,
    /// One note per policy limit clamped to the server's ceiling.
    pub clamped: Vec<String>,
}

/// What the directory holds under one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A manifest: an installed analyzer (still to be verified).
    Installed(String),
    /// A `.wasm` without a manifest: refused.
    Unmanifested(String),
}

/// The plugins directory's `analyzers/`: third-party pattern analyzers,
/// each a component, a policy and a manifest (written last) under one name.
#[derive(Debug, Clone)]
pub struct AnalyzerDir {
    path: PathBuf,
}

impl AnalyzerDir {
    /// The analyzers directory itself (`PLUGINS_DIR/analyzers`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The analyzers directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where analyzer `name`'s manifest lives (`NAME.analyzer.json`).
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}{ANALYZER_MANIFEST_SUFFIX}"))
    }

    /// Where analyzer `name`'s component lives (`NAME.wasm`).
    pub fn wasm_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.wasm"))
    }

    /// Whether `name` is taken by an analyzer: a manifest or a component
    /// of that name is here, whatever its state.
    pub fn holds(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.manifest_path(name)).is_ok() || std::fs::symlink_metadata(self.wasm_path(name)).is_ok()
    }

    /// The analyzers here, by name: installed ones (with a manifest) and
    /// components without one.
    pub fn entries(&self) -> Result<Vec<Entry>, PluginError> {
        check_subdir(&self.path)?;
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PluginError::Io(format!("reading {}: {e}", self.path.display()))),
        };
        let files: Vec<String> = rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        let mut out: Vec<Entry> = Vec::new();
        for f in &files {
            if let Some(n) = f.strip_suffix(ANALYZER_MANIFEST_SUFFIX) {
                out.push(Entry::Installed(n.into()));
            } else if let Some(n) = f.strip_suffix(".wasm")
                && !files.iter().any(|g| g.strip_suffix(ANALYZER_MANIFEST_SUFFIX) == Some(n))
            {
                out.push(Entry::Unmanifested(n.into()));
            }
        }
        out.sort_by(|a, b| entry_name(a).cmp(entry_name(b)));
        if out.len() > MAX_ANALYZERS {
            tracing::warn!(
                dir = %self.path.display(),
                analyzers = out.len(),
                kept = MAX_ANALYZERS,
                "more analyzers than a server loads; only the first, by name, are considered"
            );
            out.truncate(MAX_ANALYZERS);
        }
        Ok(out)
    }

    /// Reads analyzer `name` and checks both files against its manifest,
    /// and the policy against the server's rules (clamped to its ceilings).
    pub fn verify(&self, name: &str) -> Result<VerifiedAnalyzer, PluginError> {
        name::validate(name)?;
        check_subdir(&self.path)?;
        let path = self.manifest_path(name);
        let text = read_untrusted(&path, MAX_MANIFEST_BYTES)?;
        let manifest: AnalyzerManifest =
            serde_json::from_slice(&text).map_err(|e| PluginError::Manifest(format!("{}: {e}", path.display())))?;
        if manifest.format != ANALYZER_MANIFEST_FORMAT {
            return Err(PluginError::Manifest(format!(
                "format {} is not supported (this build reads format {ANALYZER_MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        if manifest.name != name {
            return Err(PluginError::Manifest(format!("it names analyzer {:?}, not {name:?}", manifest.name)));
        }
        let wasm = self.checked(name, &manifest.wasm, ".wasm", MAX_WASM_BYTES)?;
        let policy = self.checked(name, &manifest.policy, ".policy.toml", MAX_POLICY_BYTES)?;
        let policy_file = self.path.join(&manifest.policy.file).display().to_string();
        let text = String::from_utf8(policy).map_err(|_| PluginError::Policy(format!("{policy_file} is not UTF-8")))?;
        let (policy, clamped) = AnalyzerPolicy::parse(&text, &policy_file).map_err(|e| PluginError::Policy(e.to_string()))?;
        Ok(VerifiedAnalyzer { manifest, wasm, policy, clamped })
    }

    /// Reads one file the manifest names (it must be `NAME` + `suffix`)
    /// and checks it against its sum.
    fn checked(&self, name: &str, sum: &FileSum, suffix: &str, cap: u64) -> Result<Vec<u8>, PluginError> {
        if sum.file != format!("{name}{suffix}") {
            return Err(PluginError::Manifest(format!("file {:?} is not this analyzer's {name}{suffix}", sum.file)));
        }
        sum.read_checked(&self.path, cap)
    }

    /// Writes analyzer `name`: the component, its policy, then the
    /// manifest (`how` says what installed it). Returns the manifest.
    pub fn install(&self, name: &str, wasm: &[u8], policy: &[u8], how: &str) -> Result<AnalyzerManifest, PluginError> {
        name::validate(name)?;
        check_subdir(&self.path)?;
        std::fs::create_dir_all(&self.path).map_err(|e| PluginError::Io(format!("creating {}: {e}", self.path.display())))?;
        let manifest = AnalyzerManifest::new(name, wasm, policy, how);
        for (file, bytes) in [
            (manifest.wasm.file.as_str(), wasm),
            (manifest.policy.file.as_str(), policy),
            (&format!("{name}{ANALYZER_MANIFEST_SUFFIX}"), manifest.to_json().as_bytes()),
        ] {
            write_atomic(&self.path.join(file), bytes).map_err(|e| PluginError::Io(format!("{e:#}")))?;
        }
        Ok(manifest)
    }

    /// Removes analyzer `name`: the manifest first, then its files.
    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        name::validate(name)?;
        check_subdir(&self.path)?;
        if !self.holds(name) {
            return Err(PluginError::NotFound(name.into()));
        }
        for f in [format!("{name}{ANALYZER_MANIFEST_SUFFIX}"), format!("{name}.wasm"), format!("{name}.policy.toml")] {
            match std::fs::remove_file(self.path.join(&f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PluginError::Io(format!("removing {f}: {e}"))),
            }
        }
        Ok(())
    }
}

/// The name an entry is under.
pub fn entry_name(e: &Entry) -> &str {
    match e {
        Entry::Installed(n) | Entry::Unmanifested(n) => n,
    }
}

/// The reason a component without a manifest is refused.
pub fn unmanifested_reason(dir: &AnalyzerDir, name: &str) -> String {
    format!(
        "{} has no manifest ({name}{ANALYZER_MANIFEST_SUFFIX}); install analyzers with `memory-mcp analyzer install FILE.wasm [--policy POLICY.toml]`, which checksums them",
        dir.wasm_path(name).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_analyzers_verify_and_tampering_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = AnalyzerDir::new(root.path().join("analyzers"));
        dir.install("slow", b"\0asm-bytes", b"version = 1\n", "test").expect("install");
        let v = dir.verify("slow").expect("verified");
        assert_eq!(v.wasm, b"\0asm-bytes");
        assert_eq!(dir.entries().expect("entries"), vec![Entry::Installed("slow".into())]);
        std::fs::write(dir.wasm_path("slow"), b"changed").expect("tamper");
        assert!(matches!(dir.verify("slow"), Err(PluginError::Checksum { .. })));
        std::fs::write(dir.path().join("loose.wasm"), b"x").expect("drop in");
        assert!(dir.entries().expect("entries").contains(&Entry::Unmanifested("loose".into())));
        assert!(dir.holds("loose") && dir.holds("slow") && !dir.holds("other"));
        dir.remove("slow").expect("remove");
        assert!(!dir.holds("slow"));
    }
}
