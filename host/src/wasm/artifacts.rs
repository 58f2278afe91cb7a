//! Ready-to-run components: pre-initialised (a Wizer snapshot, so QuickJS
//! starts with its heap built) and precompiled by Cranelift, cached on disk.
//!
//! The cache key is the blake3 of the source component, this build's
//! version and the engine's compatibility hash, so an artifact made by
//! another engine or from other bytes is never picked up. Each artifact has
//! a blake3 sidecar, checked before it is loaded, so a truncated or altered
//! file is rebuilt rather than trusted. Writes are atomic (temp + rename).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wizer::{ComponentContext, WasmtimeWizerComponent, Wizer};

use super::guest::{GuestOptions, GuestState};
use super::linker::{self, Grants, HostInterface};
use super::runner;
use super::stop::Stop;

/// The exported function the snapshotter runs before taking the snapshot.
pub const INIT_FUNC: &str = "initialize";

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
    /// The component's name in the cache.
    pub name: String,
    /// Its cache key.
    pub key: String,
    /// Whether it was read from the cache (else compiled now).
    pub cache_hit: bool,
    /// How long loading took.
    pub millis: u64,
}

/// One component's preparation for snapshotting, shared by its waiters.
type Prepared = Arc<tokio::sync::OnceCell<Arc<Instrumented>>>;

/// Compiled components on disk, keyed by source, build and engine.
#[derive(Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// Components prepared for snapshotting ([`ArtifactCache::instrumented`]).
    instrumented: Arc<Mutex<HashMap<String, Prepared>>>,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ArtifactCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), instrumented: Arc::default() }
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `name` ready to instantiate: from the cache when a matching,
    /// intact artifact is there, else by snapshotting (when `init_func` is
    /// given) and compiling `source`, then caching the result. Reading,
    /// checking, compiling and writing run on blocking threads.
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
        let (engine2, path2) = (engine.clone(), path.clone());
        let cached = tokio::task::spawn_blocking(move || try_cached(&engine2, &path2))
            .await
            .map_err(|e| anyhow!("cache read task failed: {e}"))?;
        if let Some(component) = cached {
            return Ok((component, report(name, key, true, started.elapsed())));
        }
        let ready = match init_func {
            Some(f) => snapshot(engine, source, f)
                .await
                .with_context(|| format!("pre-initialising {name}"))?,
            None => source.to_vec(),
        };
        let (engine2, cache, owned) = (engine.clone(), self.clone(), name.to_string());
        let component = tokio::task::spawn_blocking(move || -> Result<Component> {
            let compiled = engine2.precompile_component(&ready).map_err(|e| anyhow!("compiling {owned}: {e:?}"))?;
            if let Err(e) = cache.store(&path, &compiled) {
                tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component; it will be recompiled next start");
            }
            // Produced just now by `precompile_component` on this very engine.
            load_own_artifact(&engine2, &compiled).map_err(|e| anyhow!("loading compiled {owned}: {e}"))
        })
        .await
        .map_err(|e| anyhow!("compile task failed: {e}"))??;
        Ok((component, report(name, key, false, started.elapsed())))
    }

    fn store(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        write_atomic(path, bytes)?;
        write_atomic(&sidecar_path(path), blake3::hash(bytes).to_hex().as_bytes())?;
        Ok(())
    }
}

/// Loads a component this host compiled itself: the one place the host
/// runs unsafe code to load wasm (the workspace denies `unsafe_code`).
///
/// `bytes` must be `precompile_component` output of an engine with this
/// engine's compatibility hash: made in this process, or read from the
/// artifact cache, whose file names carry that hash and whose contents
/// are checked against their blake3 sidecar before they get here. Never
/// pass bytes from anywhere else (a plugin directory, a client).
#[allow(unsafe_code)]
fn load_own_artifact(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own
    // compiled code. The callers pass only artifacts this host produced with
    // `precompile_component` (see above); wasmtime also re-checks the
    // engine header and compatibility hash on load, so a stale artifact is
    // an error, not undefined behaviour.
    unsafe { Component::deserialize(engine, bytes) }
}

/// The cached artifact at `path`, if it is intact and `engine` accepts it.
fn try_cached(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    let sidecar = std::fs::read_to_string(sidecar_path(path)).ok()?;
    if blake3::hash(&bytes).to_hex().as_str() != sidecar.trim() {
        tracing::warn!(path = %path.display(), "cached artifact does not match its checksum; rebuilding");
        return None;
    }
    // Written by `store` from `precompile_component` output for an engine
    // with the same compatibility hash (it is in the file name), and its
    // checksum was just verified.
    match load_own_artifact(engine, &bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cached artifact rejected; rebuilding");
            None
        }
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

/// Why a snapshot was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The store's deadline passed during initialisation.
    #[error("the time limit passed while initialising the component")]
    Timeout,
    /// Initialisation needed more memory than the store's limit.
    #[error("initialising the component exceeded its memory limit")]
    Memory,
    /// Initialisation trapped (what trapped; the guest's stderr is the caller's).
    #[error("initialisation trapped: {0}")]
    Trap(String),
    /// Instrumenting, compiling, linking or rewriting failed.
    #[error("{0}")]
    Internal(String),
}

/// A component instrumented for snapshotting and compiled for one engine:
/// what [`snapshot_with`] instantiates. Preparing one is CPU-bound work
/// (parsing, instrumenting, Cranelift) done on blocking threads.
pub struct Instrumented {
    cx: ComponentContext<'static>,
    component: Component,
}

/// The wizer settings every snapshot here uses: `init_func` is kept (the
/// component still lifts it; calling it again does nothing).
fn wizer(init_func: &str) -> Wizer {
    let mut wizer = Wizer::new();
    wizer.init_func(init_func);
    wizer.keep_init_func(true);
    wizer
}

impl ArtifactCache {
    /// `source` instrumented and compiled for `engine`, once per cache (its
    /// clones share it): the compiled code is also cached on disk. The work
    /// runs in a task of its own, so a caller that gives up waiting does
    /// not waste it.
    pub async fn instrumented(&self, engine: &Engine, name: &str, source: &'static [u8]) -> Result<Arc<Instrumented>> {
        let key = format!("{name}-{}", cache_key(engine, source, true));
        let cell = {
            let mut memo = crate::sync::lock(&self.instrumented);
            memo.entry(key).or_default().clone()
        };
        let ready = cell
            .get_or_try_init(|| {
                let (cache, engine, owned) = (self.clone(), engine.clone(), name.to_string());
                async move {
                    tokio::spawn(async move { instrument(&cache, &engine, &owned, source).await.map(Arc::new) })
                        .await
                        .map_err(|e| anyhow!("preparing {name}: {e}"))?
                }
            })
            .await?;
        if !Engine::same(ready.component.engine(), engine) {
            // Another engine's cache; prepare without the memo.
            return instrument(self, engine, name, source).await.map(Arc::new);
        }
        Ok(ready.clone())
    }
}

/// Instruments `source` for wizer (on a blocking thread) and compiles the
/// result (through the disk cache).
async fn instrument(cache: &ArtifactCache, engine: &Engine, name: &str, source: &'static [u8]) -> Result<Instrumented> {
    let (cx, instrumented) = tokio::task::spawn_blocking(move || wizer(INIT_FUNC).instrument_component(source))
        .await
        .map_err(|e| anyhow!("instrumenting {name}: {e}"))?
        .map_err(|e| anyhow!("instrumenting {name}: {e:?}"))?;
    let (component, _) = cache.load(engine, &format!("{name}-instrumented"), &instrumented, None).await?;
    Ok(Instrumented { cx, component })
}

/// Runs `init_func` in a fresh instance of `source` and returns the
/// snapshot of its state as a new component. For trusted components (the
/// JS runtime): a generous deadline and memory limit, and all of it on a
/// blocking thread.
pub async fn snapshot(engine: &Engine, source: &[u8], init_func: &str) -> Result<Vec<u8>> {
    let (engine, source, init_func) = (engine.clone(), source.to_vec(), init_func.to_string());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let (cx, instrumented) = wizer(&init_func).instrument_component(&source).map_err(|e| anyhow!("instrumenting: {e:?}"))?;
        let component = Component::new(&engine, &instrumented).map_err(|e| anyhow!("compiling: {e:?}"))?;
        // The embedder's interfaces are not linked: initialisation calls
        // none, and one it did call would trap as denied.
        let state = GuestState::new(GuestOptions::for_snapshot(), ()).map_err(|e| anyhow!("{e}"))?;
        let (store, instance) = handle
            .block_on(initialise(&engine, &component, &init_func, state, &[]))
            .map_err(|e| anyhow!("{e}"))?;
        read_out(&cx, store, instance, &init_func).map_err(|e| anyhow!("{e}"))
    })
    .await
    .map_err(|e| anyhow!("snapshot task: {e}"))?
}

/// Snapshots `inst` after running `init_func` in a store made from `state`,
/// linked with `interfaces`: `state`'s memory limit holds and its deadline
/// ends initialisation, which yields to the async runtime every epoch
/// tick as every other guest call does. The read-out and rewrite of the
/// instance's state, CPU-bound host work, run on a blocking thread.
pub async fn snapshot_with<H: Send + 'static>(
    engine: &Engine,
    inst: &Arc<Instrumented>,
    init_func: &str,
    state: GuestState<H>,
    interfaces: &[HostInterface<H>],
) -> Result<Vec<u8>, SnapshotError> {
    let (store, instance) = initialise(engine, &inst.component, init_func, state, interfaces).await?;
    let (inst, init_func) = (inst.clone(), init_func.to_string());
    tokio::task::spawn_blocking(move || read_out(&inst.cx, store, instance, &init_func))
        .await
        .map_err(|e| SnapshotError::Internal(format!("snapshot task: {e}")))?
}

/// Instantiates `component` in a bounded store made from `state` and runs
/// `init_func` there, within the state's deadline and memory limit.
async fn initialise<H: Send + 'static>(
    engine: &Engine,
    component: &Component,
    init_func: &str,
    state: GuestState<H>,
    interfaces: &[HostInterface<H>],
) -> Result<(wasmtime::Store<GuestState<H>>, wasmtime::component::Instance), SnapshotError> {
    let mut store = runner::store(engine, state, runner::Budget::default());
    let linker = linker::linker(engine, component, Grants::NONE, interfaces)
        .map_err(|e| SnapshotError::Internal(format!("linking: {e}")))?;
    let deadline = store.data().deadline;
    let ran = runner::race(deadline, None, async {
        let instance = linker.instantiate_async(&mut store, component).await?;
        let func = instance
            .get_func(&mut store, init_func)
            .ok_or_else(|| wasmtime::format_err!("the component does not export `{init_func}`"))?;
        func.call_async(&mut store, &[], &mut []).await?;
        wasmtime::Result::Ok(instance)
    })
    .await;
    let ran = runner::ended(ran, &store);
    match ran {
        Ok(instance) => Ok((store, instance)),
        Err(Stop::Deadline) => Err(SnapshotError::Timeout),
        Err(Stop::Memory) => Err(SnapshotError::Memory),
        Err(stop) => Err(SnapshotError::Trap(stop.what())),
    }
}

/// Reads an initialised instance's state out and rewrites it into the
/// snapshot component. The guest's part is over: wizer's own accessors
/// run now, and must not be interrupted (wizer unwraps their results), so
/// the store only yields from here on.
fn read_out<H: Send + 'static>(
    cx: &ComponentContext<'_>,
    mut store: wasmtime::Store<GuestState<H>>,
    instance: wasmtime::component::Instance,
    init_func: &str,
) -> Result<Vec<u8>, SnapshotError> {
    store.epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Yield(1)));
    let mut state = WasmtimeWizerComponent { store: &mut store, instance };
    futures::executor::block_on(wizer(init_func).snapshot_component(cx, &mut state))
        .map_err(|e| SnapshotError::Internal(format!("snapshotting: {e:?}")))
}
