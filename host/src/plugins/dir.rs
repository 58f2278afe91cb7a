//! JS tool plugins in the plugins directory (`PLUGINS_DIR/tools/`, see
//! [`super::layout`]): each plugin is `NAME.wasm`, `NAME.policy.toml`,
//! its source (`NAME.js` or `NAME.ts`) and `NAME.plugin.json`, the manifest
//! that ties them together. Writes are atomic (temporary file, then
//! rename) and the manifest goes last; removal takes the manifest first.
//! So a crash mid-write or mid-removal never leaves a half plugin that
//! loads. Every file is read as untrusted input ([`super::file`]): regular
//! files only, within a size cap, without blocking.

use std::path::{Path, PathBuf};

use super::file::{MAX_MANIFEST_BYTES, MAX_POLICY_BYTES, MAX_SOURCE_BYTES, MAX_WASM_BYTES, check_subdir, read_untrusted};
use super::manifest::{MANIFEST_FORMAT, MANIFEST_SUFFIX, Manifest};
use super::{layout, name};
use super::policy::PluginPolicy;
use super::{Built, PluginError};
use crate::wasm::write_atomic;

/// The most JS tool plugins a server considers (see [`PluginDir::names`]).
pub const MAX_PLUGINS: usize = 1000;

/// Turns for writing and removing plugins (only files are written under
/// it, never a read of unknown length).
static WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A plugin read back from disk, every file checked against the manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its manifest, as read.
    pub manifest: Manifest,
    /// The component's bytes, matching the manifest's checksum.
    pub wasm: Vec<u8>,
    /// Its policy, parsed (not yet checked against the server's).
    pub policy: PluginPolicy,
    /// The script it was built from.
    pub source: String,
}

/// The plugins directory's `tools/`: JS tool plugins, each a component, a
/// policy, its source and a manifest (written last) under one name.
#[derive(Debug, Clone)]
pub struct PluginDir {
    /// The plugins directory.
    root: PathBuf,
    /// Its `tools/` subdirectory, where these files live.
    path: PathBuf,
}

impl PluginDir {
    /// The JS plugins of plugins directory `root` (in `root/tools`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self { path: layout::tools_dir(&root), root }
    }

    /// The `tools/` subdirectory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugins directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `name` is taken by a pattern analyzer.
    pub fn held_by_analyzer(&self, name: &str) -> bool {
        layout::held_by_analyzer(&self.root, name)
    }

    /// Where plugin `name`'s manifest lives (`NAME.plugin.json`).
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}{MANIFEST_SUFFIX}"))
    }

    /// The names of the plugins here (those with a manifest), sorted: at
    /// most [`MAX_PLUGINS`], the first in order (a warning names how many
    /// more were ignored), so that however many files are dropped in, the
    /// server verifies, holds and lists a bounded number.
    pub fn names(&self) -> Result<Vec<String>, PluginError> {
        if let Err(e) = check_subdir(&self.path) {
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(reason = %e, "no JS plugin is loaded");
            }
            return Err(e.into());
        }
        let entries = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PluginError::Io(format!("reading {}: {e}", self.path.display()))),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(MANIFEST_SUFFIX)).map(String::from))
            .collect();
        names.sort();
        if names.len() > MAX_PLUGINS {
            static WARNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            if WARNED.swap(names.len(), std::sync::atomic::Ordering::Relaxed) != names.len() {
                tracing::warn!(
                    dir = %self.path.display(),
                    manifests = names.len(),
                    kept = MAX_PLUGINS,
                    "more plugin manifests than a server loads; only the first, by name, are considered"
                );
            }
            names.truncate(MAX_PLUGINS);
        }
        Ok(names)
    }

    /// A fingerprint of the manifests here (names, sizes, modification
    /// times): it changes when a plugin is added, replaced or removed.
    pub fn fingerprint(&self) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
        let names = self.names().unwrap_or_default();
        names
            .into_iter()
            .map(|n| {
                let meta = std::fs::metadata(self.manifest_path(&n)).ok();
                let (len, modified) = meta.map(|m| (m.len(), m.modified().ok())).unwrap_or((0, None));
                (n, len, modified)
            })
            .collect()
    }

    /// Writes a built plugin: its files first, the manifest last.
    pub fn write(&self, built: &Built) -> Result<(), PluginError> {
        self.write_as(built, true)
    }

    /// [`PluginDir::write`], refusing (with [`PluginError::Exists`]) to
    /// replace a plugin of the same name unless `replace`. Writes and
    /// removals in this process take turns, and the check is made in the
    /// same turn: two `save_plugin` calls of one name built at the same
    /// time used to interleave their files, which left a manifest of one
    /// and a component of the other (refused for its checksum), and both
    /// passed a `replace: false` check made before their builds.
    pub fn write_as(&self, built: &Built, replace: bool) -> Result<(), PluginError> {
        let _turn = crate::sync::lock(&WRITES);
        if !replace && std::fs::symlink_metadata(self.manifest_path(&built.manifest.name)).is_ok() {
            return Err(PluginError::Exists(built.manifest.name.clone()));
        }
        name::validate(&built.manifest.name)?;
        check_subdir(&self.path)?;
        std::fs::create_dir_all(&self.path)
            .map_err(|e| PluginError::Io(format!("creating {}: {e}", self.path.display())))?;
        let m = &built.manifest;
        for (file, bytes) in [
            (&m.wasm.file, built.wasm.as_slice()),
            (&m.policy.file, built.policy_toml.as_bytes()),
            (&m.source.file, built.source.as_bytes()),
            (&format!("{}{MANIFEST_SUFFIX}", m.name), m.to_json().as_bytes()),
        ] {
            write_atomic(&self.path.join(file), bytes).map_err(|e| PluginError::Io(format!("{e:#}")))?;
        }
        Ok(())
    }

    /// Reads plugin `name` and checks every file against its manifest.
    /// Any missing file, checksum mismatch, unknown field or invalid
    /// component refuses it, with the reason.
    pub fn verify(&self, name: &str) -> Result<Verified, PluginError> {
        name::validate(name)?;
        check_subdir(&self.path)?;
        let manifest_path = self.manifest_path(name);
        let text = read_untrusted(&manifest_path, MAX_MANIFEST_BYTES)?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| PluginError::Manifest(format!("{}: {e}", manifest_path.display())))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(PluginError::Manifest(format!(
                "format {} is not supported (this build reads format {MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        if manifest.name != name {
            return Err(PluginError::Manifest(format!("it names plugin {:?}, not {name:?}", manifest.name)));
        }
        // What every session's tools/list carries is bounded as at build.
        if manifest.description.len() > super::builder::MAX_DESCRIPTION_BYTES {
            return Err(PluginError::Manifest(format!(
                "the description is {} bytes; the limit is {}",
                manifest.description.len(),
                super::builder::MAX_DESCRIPTION_BYTES
            )));
        }
        super::builder::check_schema(&manifest.input_schema).map_err(|e| PluginError::Manifest(e.to_string()))?;
        let mut files = Vec::new();
        for (sum, cap) in [(&manifest.wasm, MAX_WASM_BYTES), (&manifest.policy, MAX_POLICY_BYTES), (&manifest.source, MAX_SOURCE_BYTES)] {
            if !sum.file.starts_with(name) || sum.file.contains(['/', '\\']) || sum.file.contains("..") {
                return Err(PluginError::Manifest(format!("file {:?} is not one of this plugin's", sum.file)));
            }
            files.push(sum.read_checked(&self.path, cap)?);
        }
        let [wasm, policy, source]: [Vec<u8>; 3] =
            files.try_into().map_err(|_| PluginError::Manifest("internal: file count".into()))?;
        let policy_text = String::from_utf8(policy).map_err(|_| PluginError::Policy("the file is not UTF-8".into()))?;
        let policy = PluginPolicy::parse(&policy_text)?;
        if policy.grants_tools() != (manifest.world == super::manifest::PluginWorld::ToolPlugin) {
            return Err(PluginError::Manifest(format!(
                "the policy {} tools but the component is built on world {}; rebuild the plugin",
                if policy.grants_tools() { "grants" } else { "grants no" },
                manifest.world.as_str()
            )));
        }
        super::inspect::validate(&wasm)?;
        let source = String::from_utf8(source).map_err(|_| PluginError::Manifest("the source is not UTF-8".into()))?;
        Ok(Verified { manifest, wasm, policy, source })
    }

    /// Removes plugin `name`: its manifest first (from then on it does
    /// not load), then its other files.
    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        let _turn = crate::sync::lock(&WRITES);
        name::validate(name)?;
        check_subdir(&self.path)?;
        let path = self.manifest_path(name);
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(PluginError::NotFound(name.into()));
        }
        // Whatever the manifest is (even a FIFO), it goes; its file list
        // is used only when it reads as one.
        let manifest: Option<Manifest> =
            read_untrusted(&path, MAX_MANIFEST_BYTES).ok().and_then(|t| serde_json::from_slice(&t).ok());
        std::fs::remove_file(&path).map_err(|e| PluginError::Io(format!("removing {}: {e}", path.display())))?;
        let files: Vec<String> = match &manifest {
            Some(m) => vec![m.wasm.file.clone(), m.policy.file.clone(), m.source.file.clone()],
            None => ["wasm", "policy.toml", "js", "ts"].iter().map(|x| format!("{name}.{x}")).collect(),
        };
        for f in files.iter().filter(|f| f.starts_with(name) && !f.contains(['/', '\\'])) {
            let _ = std::fs::remove_file(self.path.join(f));
        }
        Ok(())
    }
}
