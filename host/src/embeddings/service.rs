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
//! | `embedding` | `active`      | [`Active`] JSON: space in use      |
//! | `embedding` | `job`         | [`Job`] JSON: re-embedding running |

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use fjall::{Keyspace, KeyspaceCreateOptions, PersistMode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;
use wasmtime::Engine;

use super::embedder::{EmbedFailure, Embedder, ModelInfo, Space};
use super::index::VectorIndex;
use super::providers::Providers;
use super::settings::EmbeddingSettings;
use crate::learning::PatternStore;
use crate::memory::keys::{EPISODE_ITEM, PATTERN_ITEM, item_key};
use crate::memory::{EpisodeStore, StoreError};
use crate::wasm::artifacts::ArtifactCache;

/// The space whose vectors are indexed and searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Active {
    #[schemars(with = "String")]
    #[serde(with = "space_hex")]
    pub space: Space,
    pub info: ModelInfo,
}

mod space_hex {
    use super::Space;
    pub fn serialize<S: serde::Serializer>(s: &Space, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&s.to_string())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Space, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(de)?;
        u64::from_str_radix(&s, 16).map(Space).map_err(serde::de::Error::custom)
    }
}

/// A re-embedding of everything stored, after the space changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub reason: String,
    pub total: u64,
    pub started_at: DateTime<Utc>,
}

/// What the worker has done since start-up.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct WorkerStatus {
    pub embedded: u64,
    pub batches: u64,
    pub failed_batches: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub last_batch_ms: f64,
}

/// Persisted settings refused at start-up, and why.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RefusedSettings {
    pub provider: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub reason: String,
    /// What is used instead.
    pub fallback: String,
}

pub(super) enum Provider {
    Loading,
    Ready(Arc<Embedder>),
    Failed(EmbedFailure),
}

pub struct Embeddings {
    pub(super) memory: Arc<EpisodeStore>,
    pub(super) patterns: Arc<PatternStore>,
    pub(super) engine: Engine,
    pub(super) cache: ArtifactCache,
    pub(super) dir: PathBuf,
    /// The data dir (models are installed under it).
    data_dir: PathBuf,
    meta: Keyspace,
    /// What the operator allows `configure_embeddings` to choose.
    providers: Providers,
    /// Persisted settings refused at start-up.
    refused: Option<RefusedSettings>,
    pub(super) settings: RwLock<EmbeddingSettings>,
    pub(super) provider: RwLock<Provider>,
    pub(super) active: RwLock<Option<Active>>,
    pub(super) episodes: RwLock<Option<VectorIndex>>,
    pub(super) pattern_index: RwLock<Option<VectorIndex>>,
    /// Held while the active space changes and while a batch's vectors are
    /// written, so a batch embedded under the old space is never stored
    /// under the new one.
    pub(super) switch: Mutex<()>,
    pub(super) status: Mutex<WorkerStatus>,
    pub(super) wake: Notify,
    /// Signalled when the provider changes: ends a failure backoff early.
    pub(super) reconfigured: Notify,
    /// Signalled when the provider has loaded or failed to.
    loaded: Notify,
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
        patterns: Arc<PatternStore>,
        data_dir: &std::path::Path,
        cache: ArtifactCache,
        providers: Providers,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context as _;
        let meta = memory.database().keyspace("embedding", KeyspaceCreateOptions::default)?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, StoreError> { Ok(meta.get(key)?.map(|v| v.to_vec())) };
        let active: Option<Active> = match get("active")? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(meta_err)?),
            None => None,
        };
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
        let engine = crate::wasm::engine::build(crate::wasm::Metering::Fuel)?;
        let me = Arc::new(Self {
            memory,
            patterns,
            engine,
            cache,
            dir: data_dir.join("vectors"),
            data_dir: data_dir.to_path_buf(),
            meta,
            providers,
            refused,
            settings: RwLock::new(settings),
            provider: RwLock::new(Provider::Loading),
            active: RwLock::new(None),
            episodes: RwLock::new(None),
            pattern_index: RwLock::new(None),
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
            let (ready, started) = (me.clone(), std::sync::mpsc::channel::<()>());
            std::thread::Builder::new().name("vector-index".into()).spawn(move || {
                let _switch = lock(&ready.switch);
                let _ = started.0.send(());
                if let Err(e) = ready.restore(a) {
                    tracing::error!(error = %e, "the vector indexes could not be restored; search is lexical only");
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
        let stored = super::vectors::load(self.memory.vectors(), EPISODE_ITEM, active.space, dims)?;
        let (episodes, reused) = VectorIndex::restore(&self.dir, active.space, dims, stored);
        let stored = super::vectors::load(self.memory.vectors(), PATTERN_ITEM, active.space, dims)?;
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
        crate::memory::heap::release_free_memory();
        Ok(())
    }

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
        Embedder::load(&self.engine, &self.cache, settings, &self.data_dir).await
    }

    /// Makes `embedder` the provider, persists its settings, and when its
    /// space differs from the active one, switches to an empty index of the
    /// new space and queues every completed episode and every pattern for
    /// re-embedding. Returns the number queued.
    pub fn install(&self, embedder: Embedder, persist: bool) -> Result<u64, StoreError> {
        let _switch = lock(&self.switch);
        let settings = embedder.settings.clone();
        let active = Active { space: embedder.space, info: embedder.info.clone() };
        let changed = read(&self.active).as_ref().map(|a| a.space) != Some(active.space);
        let mut queued = 0;
        let mut b = self.memory.database().batch();
        if persist {
            b.insert(&self.meta, "settings", serde_json::to_vec(&settings).unwrap_or_default());
        }
        if changed {
            let previous = read(&self.active).as_ref().map(|a| format!("{} / {}", a.info.provider, a.info.model));
            b.insert(&self.meta, "active", serde_json::to_vec(&active).unwrap_or_default());
            let queue = self.memory.embed_queue();
            for id in self.memory.completed_ids() {
                b.insert(queue, item_key(EPISODE_ITEM, &id), []);
                queued += 1;
            }
            for id in self.patterns.ids() {
                b.insert(queue, item_key(PATTERN_ITEM, &id), []);
                queued += 1;
            }
            let job = Job {
                reason: match previous {
                    Some(p) => format!("model changed from {p} to {} / {}", active.info.provider, active.info.model),
                    None => format!("first embedding with {} / {}", active.info.provider, active.info.model),
                },
                total: queued,
                started_at: Utc::now(),
            };
            b.insert(&self.meta, "job", serde_json::to_vec(&job).unwrap_or_default());
        }
        b.commit()?;
        self.memory.database().persist(PersistMode::SyncAll)?;
        if changed {
            let dims = active.info.dimensions as usize;
            *write(&self.episodes) = Some(VectorIndex::new(active.space, dims));
            *write(&self.pattern_index) = Some(VectorIndex::new(active.space, dims));
            *write(&self.active) = Some(active);
        }
        *write(&self.settings) = settings;
        *write(&self.provider) = Provider::Ready(Arc::new(embedder));
        self.loaded.notify_waiters();
        *lock(&self.status) = WorkerStatus::default();
        self.wake.notify_one();
        self.reconfigured.notify_one();
        Ok(queued)
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

    /// Embeds one text with the provider (for queries).
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedFailure> {
        self.wait_loaded(LOAD_WAIT).await;
        let e = self.embedder()?;
        if let Some(v) = lock(&self.queries).get(e.space, text) {
            return Ok(v);
        }
        let mut v = e.embed(&[text.to_string()]).await?;
        let v = v.pop().ok_or_else(|| EmbedFailure::BadResponse("no vector".into()))?;
        lock(&self.queries).put(e.space, text, v.clone());
        Ok(v)
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
    pub fn search_episodes(&self, vector: &[f32], limit: usize, threshold: f32, keep: &dyn Fn(&Uuid) -> bool) -> Vec<SemanticHit> {
        let guard = read(&self.episodes);
        let Some(ix) = guard.as_ref() else { return Vec::new() };
        // Deleted episodes leave their vector until the index is rebuilt.
        let keep = |id: &Uuid| self.memory.contains(id) && keep(id);
        ix.search(vector, limit, &keep)
            .into_iter()
            .filter(|(_, s)| *s >= threshold)
            .map(|(id, similarity)| SemanticHit { id, similarity })
            .collect()
    }

    /// Similarity of `vector` to each of `ids` that has a vector.
    pub fn episode_scores(&self, vector: &[f32], ids: impl IntoIterator<Item = Uuid>) -> HashMap<Uuid, f32> {
        read(&self.episodes).as_ref().map(|ix| ix.scores(vector, ids)).unwrap_or_default()
    }

    /// The `limit` patterns most similar to `vector`, with their
    /// similarity.
    pub fn pattern_scores(&self, vector: &[f32], limit: usize) -> HashMap<Uuid, f32> {
        read(&self.pattern_index)
            .as_ref()
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

    pub fn health(&self) -> serde_json::Value {
        let provider = match &*read(&self.provider) {
            Provider::Loading => serde_json::json!({"status": "loading"}),
            Provider::Ready(e) => serde_json::json!({"status": "ok", "model": e.info}),
            Provider::Failed(f) => serde_json::json!({"status": "failed", "error": f.to_string()}),
        };
        let settings = self.settings();
        let (episodes, ann, bytes) = read(&self.episodes)
            .as_ref()
            .map_or((0, false, 0), |ix| (ix.len(), ix.has_ann(), ix.memory_bytes()));
        let patterns = read(&self.pattern_index).as_ref().map_or(0, VectorIndex::len);
        let pending = self.pending();
        let job = self.job().map(|j| {
            let done = j.total.saturating_sub(pending.min(j.total));
            serde_json::json!({
                "reason": j.reason,
                "total": j.total,
                "done": done,
                "percent": if j.total == 0 { 100.0 } else { (done as f64 / j.total as f64 * 1000.0).round() / 10.0 },
                "started_at": j.started_at,
            })
        });
        let mut health = serde_json::json!({
            "provider": settings.provider.name(),
            "declared_as": match self.providers.admit(&settings) {
                Ok(Some(name)) => Some(name),
                Ok(None) => Some(settings.provider.name().to_string()),
                Err(_) => None,
            },
            "available": self.providers.names(),
            // Where a provider is and which variable holds its key are the
            // operator's (the config file and the log say); health_check
            // is callable from sandboxed code, so it names the provider
            // and model only.
            "refused_settings": self.refused.as_ref().map(|r| serde_json::json!({
                "provider": r.provider,
                "model": r.model,
                "reason": r.reason,
                "fallback": r.fallback,
            })),
            "state": provider,
            "active_space": self.active(),
            "indexed": { "episodes": episodes, "patterns": patterns, "approximate": ann, "memory_bytes": bytes },
            "pending": pending,
            "reembedding": job,
            "worker": *lock(&self.status),
        });
        let mut hidden: Vec<String> = self.providers.operator_strings();
        hidden.extend(settings.effective_base_url());
        hidden.extend(settings.api_key_env.clone());
        if let Some(r) = &self.refused {
            hidden.extend(r.base_url.clone());
            hidden.extend(r.api_key_env.clone());
        }
        super::providers::redact(&mut health, &hidden);
        health
    }
}
