//! The learning worker: drains the analysis queue in batches, off the
//! path that acknowledges `complete_episode`. Each batch goes to every
//! analyzer in turn; what each returns is checked, and what passes is
//! merged into the stored patterns (their numbers by the built-in
//! analyzer's `tallies`, in one call) in the same write that dequeues the
//! batch.
//!
//! The worker is background work and runs as such: on a thread of its own
//! ("learning") with its own current-thread runtime, at a lower CPU
//! priority on Linux ([`NICE`]), doing its storage reads and writes inline
//! there. A backlog (a server opening a directory of thousands of
//! unanalyzed episodes) then neither holds the server's async workers
//! (the analyzer calls still yield at every epoch tick, under their fuel,
//! memory and wall-clock limits) nor takes CPU from requests on a busy
//! machine; with idle cores it runs at full speed. It stops when the
//! runtime that started it shuts down.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::analyzers::{AnalyzerSet, Failure};
use super::convert::{accept, episode_to_wit};
use super::patterns::PatternStore;
use crate::memory::{EpisodeStore, StoreError};

/// Episodes handed to the analyzers at once.
pub const BATCH: usize = 256;
/// How often the queue is checked when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// How long the worker lets completions gather after it is woken, so a
/// burst of them is analyzed in one batch (one analyzer instance, one
/// commit) rather than one batch each beside the requests. A backlog is
/// drained without waiting.
pub const LINGER: Duration = Duration::from_millis(100);
/// How much the learning thread's nice value is raised (Linux, where a
/// nice value is per thread): under contention it yields CPU to requests.
pub const NICE: i32 = 10;

/// Where a batch's storage reads and writes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// On the calling thread (the learning thread, which is no async worker).
    Inline,
    /// On the runtime's blocking pool (a caller on an async worker).
    Pool,
}

/// Where the analyzers are.
#[derive(Clone)]
pub enum AnalyzersState {
    /// The analyzer components are still being loaded (compiled or read from the cache).
    Loading,
    /// The analyzers are loaded and the worker can run batches.
    Ready(Arc<AnalyzerSet>),
    /// Loading failed; the text says why, and learning stays off until a restart.
    Failed(String),
}

/// The worker's record since start-up, for `health_check`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStatus {
    /// Batches analyzed successfully.
    pub batches: u64,
    /// Episodes handed to the analyzers in those batches.
    pub episodes_analyzed: u64,
    /// Patterns and heuristics stored for the first time.
    pub records_new: u64,
    /// Reports merged into a record already stored (same analyzer, kind and key).
    pub records_merged: u64,
    /// When the last successful batch finished; `None` before the first.
    pub last_batch_at: Option<DateTime<Utc>>,
    /// How long the last successful batch took, in milliseconds (0 before the first).
    pub last_batch_ms: f64,
    /// Why the last batch failed; cleared by the next successful batch.
    pub last_error: Option<String>,
}

/// Learning: the analyzers, the pattern store, and the worker between.
pub struct Learning {
    /// The episodes the worker analyzes.
    pub memory: Arc<EpisodeStore>,
    /// Where the analyzers' patterns and heuristics are merged and stored.
    pub patterns: Arc<PatternStore>,
    analyzers: watch::Receiver<AnalyzersState>,
    wake: Notify,
    status: Mutex<WorkerStatus>,
}

impl Learning {
    /// Learning over `memory` and `patterns`, with analyzers arriving on `analyzers`; call [`Learning::spawn`] to start the worker.
    pub fn new(memory: Arc<EpisodeStore>, patterns: Arc<PatternStore>, analyzers: watch::Receiver<AnalyzersState>) -> Arc<Self> {
        Arc::new(Self { memory, patterns, analyzers, wake: Notify::new(), status: Mutex::new(WorkerStatus::default()) })
    }

    /// Starts the worker on its own "learning" thread (see the module
    /// docs); it stops when the current runtime shuts down. If the thread
    /// cannot start, the worker runs on the current runtime instead.
    pub fn spawn(self: &Arc<Self>) {
        let stop = CancellationToken::new();
        // Dropped, and so cancelling `stop`, when this runtime shuts down:
        // the thread then lets go of the stores as a task would.
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        let me = self.clone();
        let spawned = std::thread::Builder::new().name("learning".into()).spawn(move || me.thread(stop));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the learning thread; learning runs on the async runtime");
            let me = self.clone();
            tokio::spawn(async move { me.run(Storage::Pool).await });
        }
    }

    /// The learning thread: a lower priority, a current-thread runtime,
    /// the worker loop until `stop`.
    fn thread(self: Arc<Self>, stop: CancellationToken) {
        lower_priority();
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                crate::shutdown::failed("the learning thread's runtime did not start; learning is off", &e.to_string());
                return;
            }
        };
        runtime.block_on(async {
            tokio::select! {
                () = stop.cancelled() => {}
                () = self.run(Storage::Inline) => {}
            }
        });
    }

    /// Tells the worker there is new work (never blocks).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Where the analyzers are right now (does not wait).
    pub fn state(&self) -> AnalyzersState {
        self.analyzers.borrow().clone()
    }

    /// The analyzers, once loaded.
    pub async fn ready(&self) -> Result<Arc<AnalyzerSet>, String> {
        let mut rx = self.analyzers.clone();
        loop {
            match &*rx.borrow_and_update() {
                AnalyzersState::Ready(s) => return Ok(s.clone()),
                AnalyzersState::Failed(e) => return Err(e.clone()),
                AnalyzersState::Loading => {}
            }
            if rx.changed().await.is_err() {
                return Err("the analyzers were never loaded".into());
            }
        }
    }

    /// The worker's record since start-up.
    pub fn status(&self) -> WorkerStatus {
        crate::sync::lock(&self.status).clone()
    }

    async fn run(&self, storage: Storage) {
        let set = match self.ready().await {
            Ok(s) => s,
            // Still loading when the loader went away: the server is
            // shutting down before the analyzers loaded, which is no error.
            Err(e) if matches!(self.state(), AnalyzersState::Loading) => {
                tracing::debug!(error = %e, "learning stops: the server shut down before the analyzers loaded");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "pattern analyzers unavailable; learning is off");
                return;
            }
        };
        loop {
            match self.batch(&set, storage).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    crate::shutdown::failed("learning batch failed; will retry", &e.to_string());
                    crate::sync::lock(&self.status).last_error = Some(e.to_string());
                }
            }
            let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
            tokio::time::sleep(LINGER).await;
        }
    }

    /// Analyses one batch, its storage work on the blocking pool (for a
    /// caller on an async worker). `Ok(false)` when the queue was empty.
    pub async fn step(&self, set: &AnalyzerSet) -> Result<bool, BatchError> {
        self.batch(set, Storage::Pool).await
    }

    /// Analyses one batch, its storage work where `storage` says.
    async fn batch(&self, set: &AnalyzerSet, storage: Storage) -> Result<bool, BatchError> {
        let started = Instant::now();
        let memory = self.memory.clone();
        let loaded = offload(storage, move || -> Result<_, StoreError> {
            let ids = memory.pending_analysis(BATCH)?;
            let mut episodes = Vec::with_capacity(ids.len());
            for id in &ids {
                match memory.get_episode(*id) {
                    Ok(e) => episodes.push(episode_to_wit(e)),
                    // Deleted since it was queued: nothing to learn.
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((ids, episodes))
        })
        .await?;
        let (ids, episodes) = loaded;
        if ids.is_empty() {
            return Ok(false);
        }
        let learned = analyse(set, &episodes).await;
        // The records' numbers are merged by the built-in analyzer's
        // tallies, from the stored ones, under the tallies lock.
        let _tallies = self.patterns.tallies_lock().await;
        let patterns = self.patterns.clone();
        let plan = offload(storage, move || Ok(patterns.plan(learned))).await?;
        let tallies = set.builtin.merge_evidence(set, &plan).await.map_err(BatchError::Merge)?;
        let patterns = self.patterns.clone();
        let processed: Vec<Uuid> = ids.clone();
        let applied = offload(storage, move || patterns.apply(plan, tallies, &processed)).await?;
        let mut s = crate::sync::lock(&self.status);
        s.batches += 1;
        s.episodes_analyzed += episodes.len() as u64;
        s.records_new += applied.new;
        s.records_merged += applied.merged;
        s.last_batch_at = Some(Utc::now());
        s.last_batch_ms = started.elapsed().as_secs_f64() * 1000.0;
        s.last_error = None;
        Ok(true)
    }
}

/// Why a batch failed. Nothing of it was stored: it stays queued and is
/// analysed again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Reading the batch or storing what it taught failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The built-in analyzer's tallies could not merge the batch's records.
    #[error("merging the batch's records failed: the built-in analyzer's tallies {0}; the batch stays queued")]
    Merge(Failure),
}

/// Runs blocking storage work `f` where `storage` says.
async fn offload<T: Send + 'static>(storage: Storage, f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
    match storage {
        Storage::Inline => f(),
        Storage::Pool => tokio::task::spawn_blocking(f).await.map_err(task_failed)?,
    }
}

/// A storage task that panicked or was cancelled, as a storage error.
fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Storage(fjall::Error::Io(std::io::Error::other(format!("storage task failed: {e}"))))
}

/// Raises the calling thread's nice value by [`NICE`] (Linux: per
/// thread). Raising it needs no privilege; a failure only means learning
/// keeps the server's priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let lowered = rustix::process::getpriority_process(None)
        .and_then(|now| rustix::process::setpriority_process(None, now.saturating_add(NICE).min(19)));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "the learning thread keeps the server's CPU priority");
    }
}

/// Elsewhere a nice value is per process: the thread keeps the server's.
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Runs every analyzer over `episodes` and keeps what passes the checks.
/// A failing analyzer is recorded and skipped; the others go on.
pub async fn analyse(set: &AnalyzerSet, episodes: &[crate::world::types::Episode]) -> Vec<super::model::StoredPattern> {
    let batch: HashSet<String> = episodes.iter().map(|e| e.id.clone()).collect();
    let now = Utc::now();
    let mut learned = Vec::new();
    if episodes.is_empty() {
        return learned;
    }
    for a in set.all() {
        let out = a.extract(set.memory(), episodes).await;
        let accepted = out.and_then(|analysis| Ok(accept(analysis, &batch, &a.policy.limits, &a.provenance, now)?));
        match accepted {
            Ok(records) => {
                a.record(Ok(records.len() as u64));
                learned.extend(records);
            }
            Err(f) => a.record(Err(&f)),
        }
    }
    learned
}
