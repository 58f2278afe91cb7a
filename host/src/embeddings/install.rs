//! Installing a loaded provider: as the first space, as the serving
//! space's provider, or as the target of a re-embedding job
//! ([`super::job`]).

use std::sync::Arc;

use chrono::Utc;
use fjall::PersistMode;

use super::embedder::{EmbedFailure, Embedder};
use super::index::VectorIndex;
use super::service::{Embeddings, read, write};
use super::state::{Active, Job, Provider, WorkerStatus};
use crate::memory::StoreError;
use crate::sync::lock;

impl Embeddings {
    /// Makes `embedder` the configured provider and persists its settings
    /// when `persist`. With no space serving yet, it serves at once and
    /// everything is queued for it. Of the serving space, it replaces the
    /// serving provider (and ends a running job). Of another space, a
    /// re-embedding job fills that space while the serving one still
    /// answers queries ([`super::job`]); the newest such choice wins.
    /// Returns the number queued.
    pub fn install(&self, embedder: Embedder, persist: bool) -> Result<u64, StoreError> {
        let _switch = lock(&self.switch);
        let settings = embedder.settings.clone();
        let new = Active { space: embedder.space, info: embedder.info.clone() };
        let mut b = self.memory.database().batch();
        if persist {
            b.insert(&self.meta, "settings", serde_json::to_vec(&settings).unwrap_or_default());
        }
        let serving = self.active();
        let queued = match serving {
            None => {
                b.insert(&self.meta, "active", serde_json::to_vec(&new).unwrap_or_default());
                b.insert(&self.meta, "serving_settings", serde_json::to_vec(&settings).unwrap_or_default());
                let queued = self.queue_all(&mut b, self.memory.embed_queue());
                let job = Job {
                    reason: format!("first embedding with {} / {}", new.info.provider, new.info.model),
                    total: queued,
                    started_at: Utc::now(),
                    target: None,
                };
                b.insert(&self.meta, "job", serde_json::to_vec(&job).unwrap_or_default());
                b.commit()?;
                self.memory.database().persist(PersistMode::SyncAll)?;
                let dims = new.info.dimensions as usize;
                *write(&self.episodes) = Some(VectorIndex::new(new.space, dims));
                *write(&self.pattern_index) = Some(VectorIndex::new(new.space, dims));
                *write(&self.active) = Some(new);
                *write(&self.serving_settings) = Some(settings.clone());
                *write(&self.provider) = Provider::Ready(Arc::new(embedder));
                queued
            }
            Some(a) if a.space == new.space => {
                b.insert(&self.meta, "serving_settings", serde_json::to_vec(&settings).unwrap_or_default());
                self.abandon_job(&mut b);
                b.commit()?;
                self.memory.database().persist(PersistMode::SyncAll)?;
                *write(&self.serving_settings) = Some(settings.clone());
                *write(&self.provider) = Provider::Ready(Arc::new(embedder));
                0
            }
            Some(_) => {
                let same = read(&self.target).as_ref().is_some_and(|t| t.active.space == new.space);
                if same {
                    b.commit()?;
                    self.memory.database().persist(PersistMode::SyncAll)?;
                    if let Some(t) = write(&self.target).as_mut() {
                        t.provider = Provider::Ready(Arc::new(embedder));
                    }
                    self.job().map_or(0, |j| j.total)
                } else {
                    self.start_job(embedder, b)?
                }
            }
        };
        *write(&self.settings) = settings;
        self.loaded.notify_waiters();
        *lock(&self.status) = WorkerStatus::default();
        self.wake.notify_one();
        self.job_wake.notify_one();
        self.reconfigured.notify_one();
        Ok(queued)
    }

    /// Installs the serving provider loaded at start-up: it serves when it
    /// answers in the active space. When it answers in another (the
    /// provider changed its model), the active space cannot be served
    /// (semantic search is off, with a note) and, if it is also the
    /// configured provider, a job re-embeds into its space.
    pub(super) fn install_serving(&self, embedder: Embedder) -> Result<(), StoreError> {
        let configured = super::job::same_source(&embedder.settings, &self.settings());
        {
            let _switch = lock(&self.switch);
            if self.active().is_some() && !super::job::same_source(&embedder.settings, &self.serving_settings()) {
                // Loaded for a space that stopped serving meanwhile.
                return Ok(());
            }
            match self.active() {
                None => {}
                Some(a) if a.space == embedder.space => {
                    *write(&self.provider) = Provider::Ready(Arc::new(embedder));
                    self.loaded.notify_waiters();
                    return Ok(());
                }
                Some(a) => {
                    self.set_failed(EmbedFailure::BadResponse(format!(
                        "the provider now answers as {} / {} ({} dimensions), not as the serving space's {} / {}",
                        embedder.info.provider, embedder.info.model, embedder.info.dimensions, a.info.provider, a.info.model
                    )));
                    if !configured || read(&self.target).is_some() {
                        return Ok(());
                    }
                }
            }
        }
        self.install(embedder, false).map(|_| ())
    }
}
