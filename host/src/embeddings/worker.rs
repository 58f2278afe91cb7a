//! The embedding worker: loads the serving provider, then embeds queued
//! items into the serving space in batches, off the acknowledgement path
//! (a running re-embedding job has its own worker: [`super::job`]). A batch's vectors and the
//! removal of its queue entries are one atomic write. A failed batch stays
//! queued and is retried with backoff (1 s doubling to 60 s), so nothing
//! waiting is lost; lexical search does not depend on any of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fjall::PersistMode;

use super::embedder::{EmbedFailure, Embedder};
use super::service::{Embeddings, read, write};
use super::state::backoff;
use crate::memory::{EPISODE_ITEM, StoreError, item_key};

/// How often an idle worker looks at the queue (learned patterns are
/// queued without waking it).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// Changes after which the approximate index is saved.
const SAVE_EVERY: usize = 2_000;

impl Embeddings {
    /// Loads the configured provider in the background, then runs the
    /// worker for the life of the process.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
        let me = self.clone();
        tokio::spawn(async move { me.run_job().await });
    }

    /// Wakes the worker (an episode was completed).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    async fn load_provider(&self) {
        let mut failures = 0u32;
        loop {
            // The provider whose space serves queries; the configured one
            // when nothing serves yet.
            let settings = if self.active().is_some() { self.serving_settings() } else { self.settings() };
            let loaded = match self.providers().admit(&settings) {
                Ok(_) => self.load_embedder(settings).await,
                // The reason names the origin and key variable: the log
                // has it, callers get the provider's kind only.
                Err(reason) => {
                    tracing::warn!(%reason, "the serving embedding provider is not allowed by the config file");
                    Err(EmbedFailure::Config(format!(
                        "the serving {} provider is no longer declared in the config file",
                        settings.provider.name()
                    )))
                }
            };
            match loaded {
                Ok(e) => {
                    tracing::info!(provider = %e.info.provider, model = %e.info.model, dims = e.info.dimensions, "embedding provider ready");
                    if let Err(err) = self.install_serving(e) {
                        crate::shutdown::failed("could not record the embedding space", &err.to_string());
                    }
                    if self.embedder().is_ok() {
                        return;
                    }
                    // It answers in another space: waits for a new
                    // configuration (or the job's switch), retrying slowly.
                    failures += 1;
                    let _ = tokio::time::timeout(backoff(failures.max(6)), self.reconfigured.notified()).await;
                    if self.embedder().is_ok() {
                        return;
                    }
                }
                Err(f) => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(error = %f, retry_in_s = wait.as_secs(), "embedding provider unavailable");
                    let config = matches!(f, EmbedFailure::Config(_));
                    self.set_failed(f);
                    // A configuration error waits for `configure_embeddings`.
                    let wait = if config { Duration::from_secs(3600) } else { wait };
                    let _ = tokio::time::timeout(wait, self.reconfigured.notified()).await;
                    if self.embedder().is_ok() {
                        return; // configured meanwhile
                    }
                }
            }
        }
    }

    async fn run(self: Arc<Self>) {
        self.load_provider().await;
        let mut unsaved = 0usize;
        loop {
            let embedder = match self.embedder() {
                Ok(e) => e,
                Err(_) => {
                    self.load_provider().await;
                    continue;
                }
            };
            match self.step(&embedder).await {
                Ok(0) => {
                    if let Err(e) = self.idle(&mut unsaved).await {
                        tracing::warn!(error = %e, "saving the vector index failed");
                    }
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                Ok(n) => unsaved += n,
                Err(f) => {
                    let wait = {
                        let mut s = crate::sync::lock(&self.status);
                        s.failed_batches += 1;
                        let failures = s.consecutive_failures + 1;
                        s.failed(failures, &f)
                    };
                    tracing::warn!(error = %f, retry_in_s = wait.as_secs(), "embedding batch failed; it stays queued");
                    // New completions do not cut the backoff short; a new
                    // configuration does.
                    let _ = tokio::time::timeout(wait, self.reconfigured.notified()).await;
                }
            }
        }
    }

    /// With nothing queued: builds the approximate index when the index
    /// has grown enough, saves it after changes, and ends a finished job.
    async fn idle(self: &Arc<Self>, unsaved: &mut usize) -> anyhow::Result<()> {
        if self.job().is_some_and(|j| j.target.is_none()) && self.pending() == 0 {
            self.finish_job()?;
            tracing::info!("re-embedding finished");
        }
        let wants = read(&self.episodes).as_ref().is_some_and(|ix| ix.wants_ann());
        if wants {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.build_ann()).await??;
            *unsaved = SAVE_EVERY;
        }
        if *unsaved >= SAVE_EVERY || (*unsaved > 0 && read(&self.episodes).as_ref().is_some_and(|ix| ix.has_ann())) {
            let me = self.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                if let Some(ix) = read(&me.episodes).as_ref() {
                    ix.save(&me.dir)?;
                }
                Ok(())
            })
            .await??;
            *unsaved = 0;
        }
        Ok(())
    }

    /// Builds the episode index's graph (searches keep running on the
    /// exact path meanwhile, under the read lock of a copy).
    fn build_ann(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let Some(mut copy) = read(&self.episodes).as_ref().map(|ix| ix.clone_vectors()) else { return Ok(()) };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        copy.build_ann(threads)?;
        let mut guard = write(&self.episodes);
        if let Some(ix) = guard.as_mut() {
            if ix.space == copy.space {
                copy.catch_up(ix)?;
                *ix = copy;
            }
            tracing::info!(vectors = ix.len(), millis = started.elapsed().as_millis() as u64, "approximate index built");
        }
        Ok(())
    }

    /// Embeds one batch; returns how many items it stored.
    async fn step(&self, embedder: &Arc<Embedder>) -> Result<usize, EmbedFailure> {
        let storage = |e: StoreError| EmbedFailure::Trap(format!("storage: {e}"));
        let full = embedder.settings.batch_size.min(embedder.info.max_batch).max(1) as usize;
        if self.memory.embed_queue().is_empty().map_err(|e| storage(e.into()))? {
            return Ok(0);
        }
        // Queries share this provider (and the model's one instance):
        // they go first, and while they come batches are small.
        let plan = self.throttle.background_turn(full).await;
        let (items, texts, gone) = self.take_batch(self.memory.embed_queue(), plan.texts).map_err(storage)?;
        if items.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let vectors = if texts.is_empty() { Vec::new() } else { embedder.embed(&texts).await? };
        let busy = started.elapsed();
        if !self.store_batch(embedder, &items, &vectors, &gone, busy)? {
            return Ok(0);
        }
        let pause = self.throttle.after_batch(plan, busy);
        // A new configuration cuts the pause short.
        let _ = tokio::time::timeout(pause, self.reconfigured.notified()).await;
        Ok(items.len() + gone.len())
    }

    /// Stores a batch's vectors under the space it was embedded in, unless
    /// the space changed meanwhile (then the items stay queued for the new
    /// one, and this returns false).
    fn store_batch(
        &self,
        embedder: &Embedder,
        items: &[(u8, uuid::Uuid)],
        vectors: &[Vec<f32>],
        gone: &[(u8, uuid::Uuid)],
        busy: Duration,
    ) -> Result<bool, EmbedFailure> {
        let storage = |e: StoreError| EmbedFailure::Trap(format!("storage: {e}"));
        let _switch = crate::sync::lock(&self.switch);
        if self.active().map(|a| a.space) != Some(embedder.space) {
            return Ok(false);
        }
        // Items new since a job started are still to be embedded into
        // its target space.
        let job = read(&self.target).is_some();
        let mut b = self.memory.database().batch().durability(Some(PersistMode::Buffer));
        for ((kind, id), v) in items.iter().zip(vectors) {
            b.insert(self.memory.vectors(), item_key(*kind, id), super::vectors::encode(embedder.space, v));
            b.remove(self.memory.embed_queue(), item_key(*kind, id));
            if job {
                b.insert(&self.job_queue, item_key(*kind, id), []);
            }
        }
        for (kind, id) in gone {
            b.remove(self.memory.embed_queue(), item_key(*kind, id));
        }
        b.commit().map_err(|e| storage(e.into()))?;
        if job {
            self.job_wake.notify_one();
        }
        for ((kind, id), v) in items.iter().zip(vectors) {
            let index = if *kind == EPISODE_ITEM { &self.episodes } else { &self.pattern_index };
            if let Some(ix) = write(index).as_mut()
                && let Err(e) = ix.upsert(*id, v)
            {
                tracing::warn!(%id, error = %e, "a vector was stored but not indexed");
            }
        }
        let mut s = crate::sync::lock(&self.status);
        s.embedded += items.len() as u64;
        s.batches += 1;
        s.consecutive_failures = 0;
        s.next_retry_at = None;
        s.last_batch_ms = busy.as_secs_f64() * 1000.0;
        Ok(true)
    }
}
