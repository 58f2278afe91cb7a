//! Ready-to-run components: pre-initialised (a Wizer snapshot, so QuickJS
//! starts with its heap built) and precompiled by Cranelift, cached on disk.
//!
//! The cache key is the blake3 of the source component, this build's
//! version and the engine's compatibility hash, so an artifact made by
//! another engine or from other bytes is never picked up. Each artifact has
//! a blake3 sidecar, checked before it is loaded, so a truncated or altered
//! file is rebuilt rather than trusted. Writes are atomic (temp + rename).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use wasmtime::component::Component;
use wasmtime::{Engine, Store};
use wasmtime_wizer::Wizer;

use super::capabilities::{self, Grants};
use super::store::StoreData;

/// Bump when the snapshot procedure changes.
const SNAPSHOT_FORMAT: &str = "wizer-initialize-v1";

/// Feeds `Hash` output into blake3.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let h = self.0.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The key under which `source` is cached for `engine`.
pub fn cache_key(engine: &Engine, source: &[u8], snapshot: bool) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    h.0.update(source);
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    if snapshot {
        h.0.update(SNAPSHOT_FORMAT.as_bytes());
    }
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().to_hex()[..32].to_string()
}

/// How an artifact was obtained, for logs and `health_check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub name: String,
    pub key: String,
    pub cache_hit: bool,
    pub millis: u64,
}

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `name` ready to instantiate: from the cache when a matching,
    /// intact artifact is there, else by snapshotting (when `init_func` is
    /// given) and compiling `source`, then caching the result.
    pub async fn load(
        &self,
        engine: &Engine,
        name: &str,
        source: &[u8],
        init_func: Option<&str>,
    ) -> Result<(Component, LoadReport)> {
        let started = Instant::now();
        let key = cache_key(engine, source, init_func.is_some());
        let path = self.dir.join(format!("{name}-{key}.cwasm"));
        if let Some(component) = self.try_cached(engine, &path) {
            return Ok((component, report(name, key, true, started.elapsed())));
        }
        let ready = match init_func {
            Some(f) => snapshot(engine, source, f)
                .await
                .with_context(|| format!("pre-initialising {name}"))?,
            None => source.to_vec(),
        };
        let engine2 = engine.clone();
        let compiled = tokio::task::spawn_blocking(move || engine2.precompile_component(&ready))
            .await
            .map_err(|e| anyhow!("compile task failed: {e}"))?
            .map_err(|e| anyhow!("compiling {name}: {e:?}"))?;
        if let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component; it will be recompiled next start");
        }
        // SAFETY: these bytes were produced just now by `precompile_component`
        // on this very engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| anyhow!("loading compiled {name}: {e}"))?;
        Ok((component, report(name, key, false, started.elapsed())))
    }

    fn try_cached(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let sidecar = std::fs::read_to_string(sidecar_path(path)).ok()?;
        if blake3::hash(&bytes).to_hex().as_str() != sidecar.trim() {
            tracing::warn!(path = %path.display(), "cached artifact does not match its checksum; rebuilding");
            return None;
        }
        // SAFETY: the artifact was written by `store` from
        // `precompile_component` output for an engine with the same
        // compatibility hash (it is in the file name), and its checksum was
        // just verified. Wasmtime re-checks the engine header on load.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cached artifact rejected; rebuilding");
                None
            }
        }
    }

    fn store(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        write_atomic(path, bytes)?;
        write_atomic(&sidecar_path(path), blake3::hash(bytes).to_hex().as_bytes())?;
        Ok(())
    }
}

fn report(name: &str, key: String, cache_hit: bool, took: Duration) -> LoadReport {
    LoadReport {
        name: name.to_string(),
        key,
        cache_hit,
        millis: took.as_millis() as u64,
    }
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".b3");
    PathBuf::from(p)
}

/// Writes to a temporary file in the same directory, syncs it, then renames
/// it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().ok_or_else(|| anyhow!("{} has no parent", path.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("temp file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    // Readable like any file the user writes (temp files start at 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| anyhow!("renaming into {}: {}", path.display(), e.error))?;
    Ok(())
}

/// Runs `init_func` in a fresh instance of `source` and returns the
/// snapshot of its state as a new component.
pub async fn snapshot(engine: &Engine, source: &[u8], init_func: &str) -> Result<Vec<u8>> {
    snapshot_in(engine, source, init_func, StoreData::for_snapshot(), Grants::TOOLS).await
}

/// [`snapshot`] in a store of the caller's making (a plugin build gives
/// stdin and deterministic clocks and randomness), linked under `grants`.
pub async fn snapshot_in(engine: &Engine, source: &[u8], init_func: &str, data: StoreData, grants: Grants) -> Result<Vec<u8>> {
    let mut store = Store::new(engine, data);
    store.limiter(|d| &mut d.guard);
    // Initialisation runs once, ahead of time; a generous budget.
    store.set_epoch_deadline(60_000);
    let mut wizer = Wizer::new();
    wizer.init_func(init_func);
    // The component still lifts the export; calling it again is a no-op.
    wizer.keep_init_func(true);
    let (snap, _) = wizer
        .run_component(&mut store, source, async |store, component| {
            let linker = capabilities::linker(store.engine(), component, grants)?;
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(snap)
}
