//! The embedding service: the configured provider, the vector indexes of
//! the active space, the persisted settings, and the state the worker and
//! `health_check` share.
//!
//! Persisted settings that no declaration in the operator's config covers
//! (see [`super::providers`]) are refused at start: the default provider is
//! used instead, nothing is sent to the persisted origin, and
//! `health_check` says what was refused and why.
//!
//! | keyspace    | key           | value                              |
//! |-------------|---------------|------------------------------------|
//! | `embedding` | `settings`    | [`EmbeddingSettings`] JSON         |
//! | `embedding` | `active`      | [`Active`] JSON: the space serving queries |
//! | `embedding` | `serving_settings` | [`EmbeddingSettings`] JSON of the serving provider |
//! | `embedding` | `job`         | [`Job`] JSON: re-embedding running |
//! | `embedding` | `tidy`        | empty: old vectors to drop ([`super::job`]) |
//!
//! `settings` is what was configured; while a re-embedding job runs it
//! names the target space's provider, and `serving_settings` the provider
//! whose complete vectors still serve queries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use fjall::{Keyspace, KeyspaceCreateOptions};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;
use wasmtime::Engine;

use super::embedder::{EmbedFailure, Embedder, Space};
pub use super::state::{Active, Job, WorkerStatus};
pub(super) use super::state::Provider;
use super::index::VectorIndex;
use super::providers::Providers;
use super::settings::EmbeddingSettings;
use super::pattern_texts::PatternTexts;
use crate::memory::{EPISODE_ITEM, EpisodeStore, PATTERN_ITEM, StoreError};
use crate::wasm::ArtifactCache;

/// A query's vector and the space it was embedded in: searched only in an
/// index of that space.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryVector {
    /// The space it was embedded in.
    pub space: Space,
    /// The vector.
    pub values: Vec<f32>,
}

impl std::ops::Deref for QueryVector {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values
    }
}

/// Persisted settings refused at start-up, and why.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RefusedSettings {
    /// The refused settings' provider.
    pub provider: String,
    /// Their base URL (remote providers).
    pub base_url: Option<String>,
    /// Their API key's environment variable (never the key).
    pub api_key_env: Option<String>,
    /// Their model.
    pub model: Option<String>,
    /// Why they were refused.
    pub reason: String,
    /// What is used instead.
    pub fallback: String,
}

/// The embedding service: the settings and the active space, the embedder
/// that serves queries, the vector indexes, and the background worker and
/// jobs that keep stored episodes and patterns embedded.
pub struct Embeddings {
    pub(super) memory: Arc<EpisodeStore>,
    pub(super) patterns: Arc<dyn PatternTexts>,
    /// The fuel-metered engine: the hashed and the remote embedders.
    pub(super) engine: Engine,
    /// The deadline-metered engine: the model embedder
    /// ([`super::settings::ProviderKind::metering`]).
    model_engine: Engine,
    pub(super) cache: ArtifactCache,
    pub(super) dir: PathBuf,
    /// The data dir (models are installed under it).
    data_dir: PathBuf,
    pub(super) meta: Keyspace,
    /// The target space's vectors while a job runs ([`super::job`]).
    pub(super) next: Keyspace,
    /// Items the job has still to embed into the target space.
    pub(super) job_queue: Keyspace,
    /// What the operator allows `configure_embeddings` to choose.
    providers: Providers,
    /// Persisted settings refused at start-up.
    refused: Option<RefusedSettings>,
    pub(super) settings: RwLock<EmbeddingSettings>,
    pub(super) provider: RwLock<Provider>,
    pub(super) active: RwLock<Option<Active>>,
    /// The stored `serving_settings` (derived from the active space when
    /// absent: see [`Embeddings::serving_settings`]).
    pub(super) serving_settings: RwLock<Option<EmbeddingSettings>>,
    pub(super) episodes: RwLock<Option<VectorIndex>>,
    pub(super) pattern_index: RwLock<Option<VectorIndex>>,
    /// The space a running job fills.
    pub(super) target: RwLock<Option<super::state::Target>>,
    /// Where the tidy of unused vectors is, while one is due.
    pub(super) tidy: Mutex<Option<super::state::TidyCursor>>,
    /// Queries before job batches, and the job's duty cycle.
    pub(super) throttle: super::throttle::Throttle,
    /// Wakes the job worker.
    pub(super) job_wake: Notify,
    /// What the job worker has done since start-up.
    pub(super) job_status: Mutex<WorkerStatus>,
    /// Held while the active space changes and while a batch's vectors are
    /// written, so a batch embedded under the old space is never stored
    /// under the new one.
    pub(super) switch: Mutex<()>,
    pub(super) status: Mutex<WorkerStatus>,
    pub(super) wake: Notify,
    /// Signalled when the provider changes: ends a failure backoff early.
    pub(super) reconfigured: Notify,
    /// Signalled when the provider has loaded or failed to.
    pub(super) loaded: Notify,
    /// Query vectors by space and text.
    queries: Mutex<super::query_cache::QueryCache>,
}

/// How long a query waits for a provider that is still loading.
pub const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn meta_err(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt { keyspace: "embedding", detail: e.to_string() }
}

use crate::sync::lock;
pub(super) use crate::sync::{read, write};

/// The settings used when none are stored: the model provider
/// (`local-minilm`) when its model is installed in `data_dir` or when the
/// active space is the model's (so a model gone missing turns semantic
/// search off, with a note, rather than silently switching spaces); the
/// hashed `local` one otherwise.
pub fn default_settings(data_dir: &std::path::Path, active: Option<&Active>) -> EmbeddingSettings {
    let minilm = crate::models::MINILM;
    let model_space = active.is_some_and(|a| a.info.provider == super::providers::LOCAL_MINILM);
    if model_space || minilm.present(&minilm.path(data_dir)) {
        EmbeddingSettings { provider: super::settings::ProviderKind::LocalMinilm, ..EmbeddingSettings::default() }
    } else {
        EmbeddingSettings::default()
    }
}

/// A semantic match.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SemanticHit {
    /// The episode's or pattern's id.
    pub id: Uuid,
    /// Cosine similarity to the query.
    pub similarity: f32,
}

impl Embeddings {
    /// Opens the persisted settings (refusing them, with a warning, when
    /// `providers` does not cover them) and restores the active space's
    /// indexes from stored vectors (and the saved graph). The provider is
    /// loaded by [`Embeddings::spawn`].
    pub fn open(
        memory: Arc<EpisodeStore>,
        patterns: Arc<dyn PatternTexts>,
        data_dir: &std::path::Path,
        cache: ArtifactCache,
        providers: Providers,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context as _;
        let meta = memory.database().keyspace("embedding", KeyspaceCreateOptions::default)?;
        let next = memory.database().keyspace("vectors_next", KeyspaceCreateOptions::default)?;
        let job_queue = memory.database().keyspace("reembed_queue", KeyspaceCreateOptions::default)?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, StoreError> { Ok(meta.get(key)?.map(|v| v.to_vec())) };
        let active: Option<Active> = match get("active")? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(meta_err)?),
            None => None,
        };
        let serving_settings: Option<EmbeddingSettings> = match get("serving_settings")? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(meta_err).context("the stored serving embedding settings")?),
            None => None,
        };
        let job: Option<Job> = match get("job")? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(meta_err)?),
            None => None,
        };
        let tidy = get("tidy")?.is_some();
        let persisted: EmbeddingSettings = match get("settings")? {
            Some(b) => serde_json::from_slice(&b).map_err(meta_err).context("the stored embedding settings")?,
            None => default_settings(data_dir, active.as_ref()),
        };
        let (settings, refused) = match providers.admit(&persisted) {
            Ok(_) => (persisted, None),
            Err(reason) => {
                let fallback = default_settings(data_dir, active.as_ref());
                let refused = RefusedSettings {
                    provider: persisted.provider.name().to_string(),
                    base_url: persisted.effective_base_url(),
                    api_key_env: persisted.api_key_env.clone(),
                    model: persisted.model.clone(),
                    reason,
                    fallback: fallback.provider.name().to_string(),
                };
                tracing::warn!(
                    provider = %refused.provider,
                    base_url = refused.base_url.as_deref().unwrap_or(""),
                    api_key_env = refused.api_key_env.as_deref().unwrap_or(""),
                    reason = %refused.reason,
                    "the stored embedding settings are not allowed by the config file; using the {} provider instead",
                    refused.fallback
                );
                (fallback, Some(refused))
            }
        };
        let engine = crate::wasm::build_engine(crate::wasm::Metering::Fuel)?;
        let model_engine = crate::wasm::build_engine(crate::wasm::Metering::Deadline)?;
        let me = Arc::new(Self {
            memory,
            patterns,
            engine,
            model_engine,
            cache,
            dir: data_dir.join("vectors"),
            data_dir: data_dir.to_path_buf(),
            meta,
            next,
            job_queue,
            providers,
            refused,
            settings: RwLock::new(settings),
            provider: RwLock::new(Provider::Loading),
            active: RwLock::new(None),
            serving_settings: RwLock::new(serving_settings),
            episodes: RwLock::new(None),
            pattern_index: RwLock::new(None),
            target: RwLock::new(None),
            tidy: Mutex::new(tidy.then(super::state::TidyCursor::default)),
            throttle: super::throttle::Throttle::default(),
            job_wake: Notify::new(),
            job_status: Mutex::new(WorkerStatus::default()),
            switch: Mutex::new(()),
            status: Mutex::new(WorkerStatus::default()),
            wake: Notify::new(),
            reconfigured: Notify::new(),
            loaded: Notify::new(),
            queries: Mutex::new(super::query_cache::QueryCache::default()),
        });
        if let Some(a) = active {
            // The indexes load in the background so start-up does not wait
            // on them; the space is known at once (so the provider's
            // install sees it), and the switch lock keeps the worker from
            // storing vectors until the indexes are up.
            *write(&me.active) = Some(a.clone());
            let target = job.and_then(|j| j.target).filter(|t| t.space != a.space);
            if let Some(t) = &target {
                *write(&me.target) = Some(super::state::Target::new(t.clone(), Provider::Loading));
            }
            let (ready, started) = (me.clone(), std::sync::mpsc::channel::<()>());
            std::thread::Builder::new().name("vector-index".into()).spawn(move || {
                let _switch = lock(&ready.switch);
                let _ = started.0.send(());
                if let Err(e) = ready.restore(a) {
                    tracing::error!(error = %e, "the vector indexes could not be restored; search is lexical only");
                }
                if let Some(t) = target
                    && let Err(e) = ready.restore_target(t)
                {
                    tracing::error!(error = %e, "the re-embedding target's vectors could not be read; they are embedded again");
                }
            })?;
            let _ = started.1.recv();
        }
        Ok(me)
    }

    /// Builds the indexes of `active` from the stored vectors.
    fn restore(&self, active: Active) -> Result<(), StoreError> {
        let dims = active.info.dimensions as usize;
        let started = std::time::Instant::now();
        let stored = super::vectors::load(self.memory.vectors(), EPISODE_ITEM, active.space, dims)?.and(&self.next);
        let (episodes, reused) = VectorIndex::restore(&self.dir, active.space, dims, stored);
        let stored = super::vectors::load(self.memory.vectors(), PATTERN_ITEM, active.space, dims)?.and(&self.next);
        let (patterns, _) = VectorIndex::restore(&self.dir.join("patterns"), active.space, dims, stored);
        tracing::info!(
            space = %active.space,
            model = %active.info.model,
            episodes = episodes.len(),
            patterns = patterns.len(),
            graph_reused = reused,
            millis = started.elapsed().as_millis() as u64,
            "vector indexes restored"
        );
        *write(&self.episodes) = Some(episodes);
        *write(&self.pattern_index) = Some(patterns);
        *write(&self.active) = Some(active);
        // The stored vectors were read through temporary buffers.
        crate::memory::release_free_memory();
        Ok(())
    }

    /// Builds the target's indexes from its vectors stored so far (a job
    /// resumed after a restart).
    fn restore_target(&self, target: Active) -> Result<(), StoreError> {
        let dims = target.info.dimensions as usize;
        let mut t = super::state::Target::new(target.clone(), Provider::Loading);
        for (kind, ix) in [(EPISODE_ITEM, &mut t.episodes), (PATTERN_ITEM, &mut t.patterns)] {
            super::vectors::load(&self.next, kind, target.space, dims)?.for_each(|id, v| {
                if let Err(e) = ix.upsert(id, &v) {
                    tracing::warn!(%id, error = %e, "a stored vector was skipped");
                }
            })?;
        }
        let mut slot = write(&self.target);
        // Unless the provider was loaded (and installed) meanwhile.
        if let Some(current) = slot.as_mut().filter(|c| c.active.space == target.space) {
            current.episodes = t.episodes;
            current.patterns = t.patterns;
        }
        Ok(())
    }

    /// The settings of the provider serving queries: the stored ones, or,
    /// in a data dir from before they were stored, the built-in provider
    /// the active space names, else the configured settings.
    pub fn serving_settings(&self) -> EmbeddingSettings {
        if let Some(s) = read(&self.serving_settings).clone() {
            return s;
        }
        match self.active().map(|a| a.info.provider) {
            Some(p) if p == super::providers::LOCAL => EmbeddingSettings::default(),
            Some(p) if p == super::providers::LOCAL_MINILM => {
                EmbeddingSettings { provider: super::settings::ProviderKind::LocalMinilm, ..EmbeddingSettings::default() }
            }
            _ => self.settings(),
        }
    }

    /// The settings in force now (a copy).
    pub fn settings(&self) -> EmbeddingSettings {
        read(&self.settings).clone()
    }

    /// The providers `configure_embeddings` may choose from.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Persisted settings refused at start-up, if any.
    pub fn refused(&self) -> Option<&RefusedSettings> {
        self.refused.as_ref()
    }

    /// The provider, once loaded.
    pub fn embedder(&self) -> Result<Arc<Embedder>, EmbedFailure> {
        match &*read(&self.provider) {
            Provider::Ready(e) => Ok(e.clone()),
            Provider::Loading => Err(EmbedFailure::Unavailable("the embedding provider is still loading".into())),
            Provider::Failed(f) => Err(f.clone()),
        }
    }

    /// Loads the provider `settings` name. Nothing changes on failure.
    pub async fn load_embedder(&self, settings: EmbeddingSettings) -> Result<Embedder, EmbedFailure> {
        let engine = match settings.provider.metering() {
            crate::wasm::Metering::Deadline => &self.model_engine,
            _ => &self.engine,
        };
        Embedder::load(engine, &self.cache, settings, &self.data_dir).await
    }

    pub(super) fn set_failed(&self, f: EmbedFailure) {
        *write(&self.provider) = Provider::Failed(f);
        self.loaded.notify_waiters();
    }

    /// Waits (at most `max`) while the provider is still loading, as it is
    /// just after start-up.
    pub async fn wait_loaded(&self, max: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let notified = self.loaded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !matches!(*read(&self.provider), Provider::Loading) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// The space queries are served from, once there is one.
    pub fn active(&self) -> Option<Active> {
        read(&self.active).clone()
    }

    /// The running re-embedding, if any.
    pub fn job(&self) -> Option<Job> {
        self.meta.get("job").ok().flatten().and_then(|v| serde_json::from_slice(&v).ok())
    }

    pub(super) fn finish_job(&self) -> Result<(), StoreError> {
        self.meta.remove("job")?;
        Ok(())
    }

    /// Embeds one text with the serving provider (for queries), ahead of
    /// any re-embedding batch.
    pub async fn embed_query(&self, text: &str) -> Result<QueryVector, EmbedFailure> {
        self.wait_loaded(LOAD_WAIT).await;
        let e = self.embedder()?;
        if let Some(v) = lock(&self.queries).get(e.space, text) {
            return Ok(QueryVector { space: e.space, values: v });
        }
        let _turn = self.throttle.query();
        let mut v = e.embed(&[text.to_string()]).await?;
        let v = v.pop().ok_or_else(|| EmbedFailure::BadResponse("no vector".into()))?;
        lock(&self.queries).put(e.space, text, v.clone());
        Ok(QueryVector { space: e.space, values: v })
    }

    /// Why semantic ranking is off while the provider has failed (a model
    /// gone missing, a provider down): the `note` beside lexical results.
    /// `None` while it is loading or ready.
    pub fn lexical_note(&self) -> Option<String> {
        match &*read(&self.provider) {
            Provider::Failed(f) => Some(format!("lexical only: semantic search is off: {f}")),
            Provider::Loading => Some("lexical only: the embedding provider is still loading".to_string()),
            Provider::Ready(_) => None,
        }
    }

    /// Whether semantic ranking can take part: a provider and some vectors.
    pub fn searchable(&self) -> bool {
        self.embedder().is_ok() && read(&self.episodes).as_ref().is_some_and(|ix| !ix.is_empty())
    }

    /// The `limit` episodes most similar to `vector` passing `keep`, at
    /// least `threshold` similar.
    /// Nothing when the serving space changed since `vector` was embedded.
    pub fn search_episodes(&self, vector: &QueryVector, limit: usize, threshold: f32, keep: &dyn Fn(&Uuid) -> bool) -> Vec<SemanticHit> {
        let guard = read(&self.episodes);
        let Some(ix) = guard.as_ref().filter(|ix| ix.space == vector.space) else { return Vec::new() };
        // Deleted episodes leave their vector until the index is rebuilt.
        let keep = |id: &Uuid| self.memory.contains(id) && keep(id);
        ix.search(vector, limit, &keep)
            .into_iter()
            .filter(|(_, s)| *s >= threshold)
            .map(|(id, similarity)| SemanticHit { id, similarity })
            .collect()
    }

    /// Similarity of `vector` to each of `ids` that has a vector.
    pub fn episode_scores(&self, vector: &QueryVector, ids: impl IntoIterator<Item = Uuid>) -> HashMap<Uuid, f32> {
        read(&self.episodes).as_ref().filter(|ix| ix.space == vector.space).map(|ix| ix.scores(vector, ids)).unwrap_or_default()
    }

    /// The `limit` patterns most similar to `vector`, with their
    /// similarity.
    pub fn pattern_scores(&self, vector: &QueryVector, limit: usize) -> HashMap<Uuid, f32> {
        read(&self.pattern_index)
            .as_ref()
            .filter(|ix| ix.space == vector.space)
            .map(|ix| ix.search(vector, limit, &|_| true).into_iter().collect())
            .unwrap_or_default()
    }

    /// Episodes in the active index.
    pub fn indexed_episodes(&self) -> usize {
        read(&self.episodes).as_ref().map_or(0, VectorIndex::len)
    }

    /// Items waiting to be embedded.
    pub fn pending(&self) -> u64 {
        self.memory.embed_queue().len().map_or(0, |n| n as u64)
    }
}
