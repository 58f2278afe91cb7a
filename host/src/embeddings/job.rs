//! Re-embedding without a gap. When the configured space (the *target*)
//! differs from the one serving queries, every item is queued in
//! `reembed_queue` and embedded into the target space in the background,
//! into `vectors_next`, while queries keep embedding with the serving
//! provider and searching its complete vectors. When the target covers
//! every item, one atomic write makes it the serving space; the old
//! space's vectors are then dropped in bounded chunks (the *tidy*), so at
//! most two spaces are ever on disk. Vectors of different spaces are never
//! searched together: each index holds one space, and a query vector is
//! searched only in an index of its own space.
//!
//! A second change while a job runs: the newest target wins (its job starts
//! over, the abandoned target's vectors are tidied away), and choosing the
//! serving space again ends the job. A restart resumes the job: the
//! serving space is still served, and the target's vectors stored so far
//! are kept.
//!
//! | keyspace         | key         | value                  |
//! |------------------|-------------|------------------------|
//! | `reembed_queue`  | kind + id   | empty                  |
//! | `vectors_next`   | kind + id   | space (8) + f32 LE     |

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fjall::{Keyspace, OwnedWriteBatch as WriteBatch, PersistMode};
use uuid::Uuid;

use super::embedder::{EmbedFailure, Embedder};
use super::index::VectorIndex;
use super::service::{Embeddings, read, write};
use super::state::{Active, Job, Provider, Target, TidyCursor, backoff};
use crate::memory::{EPISODE_ITEM, PATTERN_ITEM, StoreError, item_key};
use crate::sync::lock;

/// Entries handled per tidy batch.
const TIDY_CHUNK: usize = 1024;
/// Most texts per job batch when no query is coming (fewer while queries
/// come: [`super::throttle`]).
const JOB_BATCH: u32 = 32;
/// How often an idle job worker looks for work.
const IDLE_POLL: Duration = Duration::from_secs(2);

impl Embeddings {
    /// Queues every completed episode and every pattern into `queue`;
    /// returns how many.
    pub(super) fn queue_all(&self, b: &mut WriteBatch, queue: &Keyspace) -> u64 {
        let mut queued = 0;
        for id in self.memory.completed_ids() {
            b.insert(queue, item_key(EPISODE_ITEM, &id), []);
            queued += 1;
        }
        for id in self.patterns.ids() {
            b.insert(queue, item_key(PATTERN_ITEM, &id), []);
            queued += 1;
        }
        queued
    }

    /// Empties the job queue into `b` (a job ends or starts over).
    pub(super) fn clear_job_queue(&self, b: &mut WriteBatch) {
        for kv in self.job_queue.iter() {
            if let Ok(k) = kv.key() {
                b.remove(&self.job_queue, k);
            }
        }
    }

    /// Asks for a tidy of the vectors of spaces no longer in use (written
    /// to `b`; the cursor restarts).
    pub(super) fn request_tidy(&self, b: &mut WriteBatch) {
        b.insert(&self.meta, "tidy", []);
        *lock(&self.tidy) = Some(TidyCursor::default());
    }

    /// Starts a job from the serving space into `embedder`'s (the caller
    /// holds the switch lock and has checked the spaces differ). Returns
    /// the number queued.
    pub(super) fn start_job(&self, embedder: Embedder, mut b: WriteBatch) -> Result<u64, StoreError> {
        let target = Active { space: embedder.space, info: embedder.info.clone() };
        if read(&self.target).is_some() {
            // The newest target wins: the abandoned one's vectors go.
            self.request_tidy(&mut b);
        }
        let queued = self.queue_all(&mut b, &self.job_queue);
        let from = self.active().map(|a| format!("{} / {}", a.info.provider, a.info.model)).unwrap_or_default();
        let job = Job {
            reason: format!("model changed from {from} to {} / {}", target.info.provider, target.info.model),
            total: queued,
            started_at: Utc::now(),
            target: Some(target.clone()),
        };
        b.insert(&self.meta, "job", serde_json::to_vec(&job).unwrap_or_default());
        b.commit()?;
        self.memory.database().persist(PersistMode::SyncAll)?;
        *write(&self.target) = Some(Target::new(target, Provider::Ready(Arc::new(embedder))));
        *lock(&self.job_status) = super::state::WorkerStatus::default();
        if queued == 0 {
            self.switch_locked()?;
        }
        self.job_wake.notify_one();
        Ok(queued)
    }

    /// Ends the job without switching (the serving space was chosen
    /// again).
    pub(super) fn abandon_job(&self, b: &mut WriteBatch) {
        if write(&self.target).take().is_some() {
            b.remove(&self.meta, "job");
            self.clear_job_queue(b);
            self.request_tidy(b);
        }
    }

    /// Makes the target the serving space, when it covers every item and
    /// its provider is ready (the caller holds the switch lock). Returns
    /// whether it switched.
    pub(super) fn switch_locked(&self) -> Result<bool, StoreError> {
        if !self.job_queue.is_empty().map_err(StoreError::from)? {
            return Ok(false);
        }
        let mut target = write(&self.target);
        let Some(t) = target.as_ref() else { return Ok(false) };
        let Provider::Ready(e) = &t.provider else { return Ok(false) };
        let e = e.clone();
        let mut b = self.memory.database().batch();
        b.insert(&self.meta, "active", serde_json::to_vec(&t.active).unwrap_or_default());
        b.insert(&self.meta, "serving_settings", serde_json::to_vec(&e.settings).unwrap_or_default());
        b.remove(&self.meta, "job");
        self.request_tidy(&mut b);
        b.commit()?;
        self.memory.database().persist(PersistMode::SyncAll)?;
        let Some(t) = target.take() else { return Ok(false) };
        drop(target);
        tracing::info!(space = %t.active.space, model = %t.active.info.model, episodes = t.episodes.len(), "re-embedding finished; the new space serves queries");
        *write(&self.episodes) = Some(t.episodes);
        *write(&self.pattern_index) = Some(t.patterns);
        *write(&self.active) = Some(t.active);
        *write(&self.serving_settings) = Some(e.settings.clone());
        *write(&self.provider) = Provider::Ready(e);
        self.loaded.notify_waiters();
        self.reconfigured.notify_one();
        self.wake.notify_one();
        Ok(true)
    }

    /// The running job's target provider (`None` without a job): what
    /// `test_embeddings` tries beside the serving one.
    pub fn target_embedder(&self) -> Option<Result<Arc<Embedder>, EmbedFailure>> {
        read(&self.target).as_ref().map(|t| match &t.provider {
            Provider::Ready(e) => Ok(e.clone()),
            Provider::Loading => Err(EmbedFailure::Unavailable("the re-embedding target's provider is still loading".into())),
            Provider::Failed(f) => Err(f.clone()),
        })
    }

    /// Items the running job still has to embed (0 without one).
    pub fn job_left(&self) -> u64 {
        match self.job() {
            Some(j) if j.target.is_some() => self.job_queue.len().map_or(0, |n| n as u64),
            Some(_) => self.pending(),
            None => 0,
        }
    }

    /// The job's worker, for the life of the process: loads the configured
    /// provider when it is not the serving one, tidies, and embeds the job
    /// queue into the target space under the throttle.
    pub(super) async fn run_job(self: Arc<Self>) {
        self.load_target_at_start().await;
        let mut failures = 0u32;
        loop {
            if lock(&self.tidy).is_some() {
                let me = self.clone();
                match tokio::task::spawn_blocking(move || me.tidy_chunk()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "tidying old vectors failed; retrying");
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "the tidy task failed"),
                }
                continue;
            }
            let current = read(&self.target).as_ref().map(|t| match &t.provider {
                Provider::Ready(e) => Ok(e.clone()),
                Provider::Loading | Provider::Failed(_) => Err(()),
            });
            let embedder = match current {
                None if self.configured_unloaded() => {
                    // The configured provider's load failed before any
                    // job could start (at start-up): tried again with
                    // backoff, so it starts once the provider is back.
                    self.load_configured(&mut failures).await;
                    continue;
                }
                None => {
                    let _ = tokio::time::timeout(IDLE_POLL, self.job_wake.notified()).await;
                    continue;
                }
                Some(Ok(e)) => e,
                Some(Err(_)) => {
                    // Loaded again with backoff, as at start.
                    self.load_configured(&mut failures).await;
                    continue;
                }
            };
            match self.job_step(&embedder).await {
                Ok(0) => {
                    let me = self.clone();
                    let switched = tokio::task::spawn_blocking(move || {
                        let _switch = lock(&me.switch);
                        me.switch_locked()
                    })
                    .await;
                    if !matches!(switched, Ok(Ok(true))) {
                        let _ = tokio::time::timeout(IDLE_POLL, self.job_wake.notified()).await;
                    }
                }
                Ok(_) => failures = 0,
                Err(f) => {
                    failures += 1;
                    let wait = {
                        let mut s = lock(&self.job_status);
                        s.failed_batches += 1;
                        s.failed(failures, &f)
                    };
                    tracing::warn!(error = %f, retry_in_s = wait.as_secs(), "re-embedding batch failed; it stays queued");
                    let _ = tokio::time::timeout(wait, self.reconfigured.notified()).await;
                }
            }
        }
    }

    /// At start-up, with a space serving: loads the configured provider
    /// when a job was running or the configuration names another provider.
    async fn load_target_at_start(&self) {
        let serving = self.serving_settings();
        let job = self.job().is_some_and(|j| j.target.is_some());
        if self.active().is_some() && (job || !same_source(&serving, &self.settings())) {
            let mut failures = 0;
            self.load_configured(&mut failures).await;
        }
    }

    /// Whether a space serves, no job target exists, and the configured
    /// provider is not the serving one: its load at start-up failed, so
    /// no job could start.
    pub(super) fn configured_unloaded(&self) -> bool {
        self.active().is_some() && read(&self.target).is_none() && !same_source(&self.serving_settings(), &self.settings())
    }

    /// Loads the configured provider and installs it (which starts,
    /// continues or ends the job); on failure marks the target failed,
    /// records why in the job's worker status (which `health_check`
    /// shows) and waits with backoff.
    async fn load_configured(&self, failures: &mut u32) {
        match self.load_embedder(self.settings()).await {
            Ok(e) => match self.install(e, false) {
                Ok(_) => *failures = 0,
                Err(err) => {
                    // Not retried at once: the next load waits its turn.
                    *failures += 1;
                    tracing::error!(error = %err, "could not record the re-embedding job");
                    let _ = tokio::time::timeout(backoff(*failures), self.reconfigured.notified()).await;
                }
            },
            Err(f) => {
                *failures += 1;
                let wait = lock(&self.job_status).failed(*failures, &f);
                tracing::warn!(error = %f, retry_in_s = wait.as_secs(), "the re-embedding target's provider is unavailable");
                if let Some(t) = write(&self.target).as_mut() {
                    t.provider = Provider::Failed(f);
                }
                let _ = tokio::time::timeout(wait, self.reconfigured.notified()).await;
            }
        }
    }

    /// Embeds one throttled batch of the job queue into the target space;
    /// returns how many items it handled.
    async fn job_step(&self, embedder: &Arc<Embedder>) -> Result<usize, EmbedFailure> {
        let storage = |e: StoreError| EmbedFailure::Trap(format!("storage: {e}"));
        let full = embedder.settings.batch_size.min(embedder.info.max_batch).clamp(1, JOB_BATCH) as usize;
        if self.job_queue.is_empty().map_err(|e| storage(e.into()))? {
            return Ok(0);
        }
        let plan = self.throttle.background_turn(full).await;
        let (items, texts, gone) = self.take_batch(&self.job_queue, plan.texts).map_err(storage)?;
        if items.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let vectors = if texts.is_empty() { Vec::new() } else { embedder.embed(&texts).await? };
        let busy = started.elapsed();
        {
            let _switch = lock(&self.switch);
            let mut target = write(&self.target);
            let Some(t) = target.as_mut().filter(|t| t.active.space == embedder.space) else { return Ok(0) };
            let mut b = self.memory.database().batch().durability(Some(PersistMode::Buffer));
            for ((kind, id), v) in items.iter().zip(&vectors) {
                b.insert(&self.next, item_key(*kind, id), super::vectors::encode(embedder.space, v));
                b.remove(&self.job_queue, item_key(*kind, id));
            }
            for (kind, id) in &gone {
                b.remove(&self.job_queue, item_key(*kind, id));
            }
            b.commit().map_err(|e| storage(e.into()))?;
            for ((kind, id), v) in items.iter().zip(&vectors) {
                let ix = if *kind == EPISODE_ITEM { &mut t.episodes } else { &mut t.patterns };
                if let Err(e) = ix.upsert(*id, v) {
                    tracing::warn!(%id, error = %e, "a vector was stored but not indexed");
                }
            }
        }
        {
            let mut s = lock(&self.job_status);
            s.embedded += items.len() as u64;
            s.batches += 1;
            s.consecutive_failures = 0;
            s.next_retry_at = None;
            s.last_batch_ms = busy.as_secs_f64() * 1000.0;
        }
        let pause = self.throttle.after_batch(plan, busy);
        // A new configuration cuts the pause short.
        let _ = tokio::time::timeout(pause, self.reconfigured.notified()).await;
        Ok(items.len() + gone.len())
    }

    /// The first `batch` entries of `queue` with their texts, and those
    /// whose item is gone.
    #[allow(clippy::type_complexity)]
    pub(super) fn take_batch(&self, queue: &Keyspace, batch: usize) -> Result<(Vec<(u8, Uuid)>, Vec<String>, Vec<(u8, Uuid)>), StoreError> {
        let mut items = Vec::with_capacity(batch);
        let mut texts = Vec::with_capacity(batch);
        let mut gone = Vec::new();
        for kv in queue.iter().take(batch) {
            let k = kv.key()?;
            let (Some(&kind), Some(id)) = (k.first(), k.get(1..17).and_then(|b| Uuid::from_slice(b).ok())) else { continue };
            let text = match kind {
                EPISODE_ITEM => self.memory.get_header(id).ok().map(|h| crate::memory::header_text(&h)),
                PATTERN_ITEM => self.patterns.search_text(&id),
                _ => None,
            };
            match text {
                Some(t) => {
                    items.push((kind, id));
                    texts.push(t);
                }
                None => gone.push((kind, id)),
            }
        }
        Ok((items, texts, gone))
    }

    /// One chunk of the tidy: in `vectors_next`, vectors of the serving
    /// space move into `vectors` and those of neither the serving nor the
    /// target space are deleted; then in `vectors`, every vector not of
    /// the serving space is deleted. Ends by removing saved graphs of
    /// other spaces and the tidy marker.
    fn tidy_chunk(&self) -> Result<(), StoreError> {
        let _switch = lock(&self.switch);
        let Some(mut cursor) = lock(&self.tidy).clone() else { return Ok(()) };
        let serving = self.active().map(|a| a.space);
        let target = read(&self.target).as_ref().map(|t| t.active.space);
        let ks = if cursor.vectors_phase { self.memory.vectors() } else { &self.next };
        let iter = match &cursor.after {
            Some(after) => ks.range::<&[u8], _>((std::ops::Bound::Excluded(after.as_slice()), std::ops::Bound::Unbounded)),
            None => ks.iter(),
        };
        let mut b = self.memory.database().batch().durability(Some(PersistMode::Buffer));
        let mut seen = 0;
        for kv in iter.take(TIDY_CHUNK) {
            let (k, v) = kv.into_inner()?;
            seen += 1;
            cursor.after = Some(k.to_vec());
            let space = super::vectors::decode(&v).map(|(s, _)| s);
            if cursor.vectors_phase {
                if space != serving {
                    b.remove(self.memory.vectors(), k);
                }
                continue;
            }
            if space.is_some() && space == serving {
                if self.item_alive(&k) {
                    b.insert(self.memory.vectors(), k.clone(), v);
                }
                b.remove(&self.next, k);
            } else if space.is_none() || space != target {
                b.remove(&self.next, k);
            }
        }
        b.commit()?;
        // Tidies are asked for under the switch lock, held here: the
        // cursor is this chunk's to move on.
        if seen < TIDY_CHUNK {
            if cursor.vectors_phase {
                *lock(&self.tidy) = None;
                self.meta.remove("tidy")?;
                if let Some(s) = serving {
                    VectorIndex::remove_saved_except(&self.dir, s);
                }
                tracing::info!("vectors of spaces no longer in use removed");
                return Ok(());
            }
            cursor = TidyCursor { vectors_phase: true, after: None };
        }
        *lock(&self.tidy) = Some(cursor);
        Ok(())
    }

    /// Whether the item under `key` (kind + id) still exists.
    fn item_alive(&self, key: &[u8]) -> bool {
        match (key.first(), key.get(1..17).and_then(|b| Uuid::from_slice(b).ok())) {
            (Some(&EPISODE_ITEM), Some(id)) => self.memory.contains(&id),
            (Some(&PATTERN_ITEM), Some(id)) => self.patterns.search_text(&id).is_some(),
            _ => false,
        }
    }
}

/// Whether two settings name the same provider, model and dimensions (and
/// so the same space).
pub(super) fn same_source(a: &super::EmbeddingSettings, b: &super::EmbeddingSettings) -> bool {
    a.provider == b.provider
        && a.model == b.model
        && a.effective_base_url() == b.effective_base_url()
        && a.api_key_env == b.api_key_env
        && a.dimensions == b.dimensions
}
