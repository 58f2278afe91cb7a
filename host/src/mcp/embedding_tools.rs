//! The embedding tools: choose the provider, check it, and search episodes
//! by meaning.

use std::time::Instant;

use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::memory_tools::{store_error, structured};
use super::params::{Parameters, input_error, params_or_return};
use super::server::Server;
use crate::embeddings::{EmbedFailure, EmbeddingSettings};
use crate::memory::{StoreError, TaskType};

/// Most results one semantic query returns.
const MAX_LIMIT: usize = 100;
/// Longest query text.
const MAX_QUERY_CHARS: usize = 10_000;

/// The provider is chosen by name among those the operator declared; its
/// origin and API-key variable come from the config file and cannot be
/// given here (unknown fields such as `base_url` are refused).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureEmbeddingsParams {
    /// `local-minilm` (built in: the all-MiniLM-L6-v2 model, offline,
    /// once `memory-mcp model install` has put its weights in the data
    /// dir), `local` (built in: hashed n-grams, offline, no set-up) or the
    /// name of a provider the operator declared under
    /// `[embeddings.providers.<name>]` in the config file (health_check
    /// lists them all under `embeddings.available`).
    pub provider: String,
    /// A model the operator declared for that provider (its `model` or
    /// `models`); the declared default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// The default similarity a semantic match must reach, 0..1 (0.7).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub similarity_threshold: Option<f32>,
    /// Texts per provider call, 1..2048 (256).
    #[serde(default)]
    #[schemars(range(min = 1, max = 2048))]
    pub batch_size: Option<u32>,
    /// Per HTTP attempt, 100..120000 ms (10000).
    #[serde(default)]
    #[schemars(range(min = 100, max = 120000))]
    pub timeout_ms: Option<u32>,
    /// Retries after a failed attempt, with exponential backoff, 0..10 (2).
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub max_retries: Option<u32>,
    /// Requested dimensions (1..16384), for providers that can choose; the
    /// declared value when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16384))]
    pub dimensions: Option<u32>,
    /// Answer once the re-embedding has finished (at most 10 minutes, or
    /// until cancelled), with notifications/progress when the request has
    /// a progressToken; default: answer at once.
    #[serde(default)]
    pub wait: bool,
}

/// The longest `configure_embeddings` waits for its re-embedding.
const REEMBED_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often a waiting `configure_embeddings` reports progress.
const REEMBED_POLL: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEmbeddingsParams {
    /// The text to embed; a sample sentence when absent.
    #[serde(default)]
    pub text: Option<String>,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuerySemanticMemoryParams {
    /// What to look for, in words; matched by meaning, not exact words.
    pub query: String,
    /// 1 to 100; default 10.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: usize,
    /// The least cosine similarity a result needs, 0..1; the configured
    /// default (0.7) when absent.
    #[serde(default)]
    pub similarity_threshold: Option<f32>,
    /// Only this domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Only this task type.
    #[serde(default)]
    pub task_type: Option<TaskType>,
}

fn failure(f: EmbedFailure) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(f.to_string())])
}

#[tool_router(router = embedding_router, vis = "pub(crate)")]
impl Server {
    #[tool(description = "Choose the embedding provider for semantic search: local-minilm (the default once its model is installed; offline), local (hashed n-grams; offline) or one the operator declared in the config file (ollama or openai-compatible, with its origin and API-key variable fixed there; health_check lists them). The provider is checked before anything changes; the settings persist. Changing provider or model re-embeds every stored episode in the background, throttled behind queries (progress in health_check); until every item is re-embedded, queries keep using the previous model's complete vectors, then switch to the new model at once.")]
    async fn configure_embeddings(
        &self,
        params: Parameters<ConfigureEmbeddingsParams>,
        cancel: tokio_util::sync::CancellationToken,
        peer: rmcp::Peer<rmcp::RoleServer>,
        meta: rmcp::model::RequestMetaObject,
    ) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let wait = p.wait;
        let emb = self.embeddings();
        let chosen = match emb.providers().choose(&p.provider, p.model) {
            Ok(s) => s,
            Err(e) => return Ok(input_error(e.to_string())),
        };
        let settings = EmbeddingSettings {
            dimensions: p.dimensions.or(chosen.dimensions),
            similarity_threshold: p.similarity_threshold.unwrap_or(chosen.similarity_threshold),
            batch_size: p.batch_size.unwrap_or(chosen.batch_size),
            timeout_ms: p.timeout_ms.unwrap_or(chosen.timeout_ms),
            max_retries: p.max_retries.unwrap_or(chosen.max_retries),
            ..chosen
        };
        if let Err(e) = settings.validate() {
            return Ok(input_error(e));
        }
        // Checked again, as at start-up: only what a declaration covers.
        if let Err(e) = emb.providers().admit(&settings) {
            return Ok(input_error(e));
        }
        let previous = emb.active();
        let embedder = match emb.load_embedder(settings).await {
            Ok(e) => e,
            Err(f) => return Ok(failure(f)),
        };
        let info = embedder.info.clone();
        let space = embedder.space;
        let task = {
            let emb = emb.clone();
            tokio::task::spawn_blocking(move || emb.install(embedder, true))
        };
        let queued = match task.await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Ok(store_error(e)),
            Err(e) => return Err(ErrorData::internal_error(format!("storage task failed: {e}"), None)),
        };
        let reembedding = previous.as_ref().map(|a| a.space) != Some(space);
        let remaining = if wait && reembedding { Some(self.wait_reembedded(queued, &cancel, &peer, &meta).await) } else { None };
        let mut fields = json!({
            "provider": info.provider,
            "model": info.model,
            "dimensions": info.dimensions,
            "space": space.to_string(),
            "reembedding": reembedding,
            "queued": queued,
            "previous": previous.map(|a| a.info),
        });
        if let Some(left) = remaining {
            fields["remaining"] = json!(left);
        }
        let mut out = structured(fields)?;
        out.content.insert(
            0,
            ContentBlock::text(if let Some(left) = remaining {
                format!("now embedding with {} / {} ({} dimensions); re-embedded {} of {queued} items, {left} left", info.provider, info.model, info.dimensions, queued.saturating_sub(left))
            } else if reembedding && queued == 0 {
                format!("now embedding with {} / {} ({} dimensions)", info.provider, info.model, info.dimensions)
            } else if reembedding {
                format!("re-embedding {queued} items with {} / {} ({} dimensions) in the background; queries use the previous model until every item is done", info.provider, info.model, info.dimensions)
            } else {
                format!("settings saved; still {} / {} ({} dimensions)", info.provider, info.model, info.dimensions)
            }),
        );
        Ok(out)
    }

    #[tool(description = "Embed a sample text with the provider serving queries and report provider, model, dimensions and latency (role: serving). While a re-embedding job runs, the configured target provider is tried too (reembedding_target), with a note that queries use the serving one until the job completes.")]
    async fn test_embeddings(&self, params: Parameters<TestEmbeddingsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let text = p.text.unwrap_or_else(|| "Fix the failing login test in the authentication service".into());
        if text.chars().count() > MAX_QUERY_CHARS {
            return Ok(input_error(format!("text is longer than {MAX_QUERY_CHARS} characters")));
        }
        let emb = self.embeddings();
        emb.wait_loaded(crate::embeddings::LOAD_WAIT).await;
        let embedder = match emb.embedder() {
            Ok(e) => e,
            Err(f) => return Ok(failure(f)),
        };
        let serving = match probe(&embedder, &text).await {
            Ok(v) => v,
            Err(f) => return Ok(failure(f)),
        };
        // During a re-embedding job the configured provider is the
        // target, not yet serving: both are tried and labelled, so the
        // operator sees that the new provider works and which one answers
        // queries until the job completes.
        let mut out = serving;
        out["role"] = json!("serving");
        if let Some(target) = emb.target_embedder() {
            let tried = match target {
                Ok(t) => probe(&t, &text).await.unwrap_or_else(|f| json!({"error": f.to_string()})),
                Err(f) => json!({"error": f.to_string()}),
            };
            out["reembedding_target"] = tried;
            out["note"] = json!("a re-embedding job is running: queries use the serving provider above until the target covers every item");
        }
        structured(out)
    }

    #[tool(description = "Search past episodes by meaning: the query is embedded and compared with every completed episode's embedding (cosine similarity). Returns episodes at or above the similarity threshold, most similar first.")]
    pub(super) async fn query_semantic_memory(&self, params: Parameters<QuerySemanticMemoryParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if !(1..=MAX_LIMIT).contains(&p.limit) {
            return Ok(input_error(format!("limit must be between 1 and {MAX_LIMIT}, got {}", p.limit)));
        }
        if p.query.trim().is_empty() || p.query.chars().count() > MAX_QUERY_CHARS {
            return Ok(input_error(format!("query must have 1 to {MAX_QUERY_CHARS} characters")));
        }
        let emb = self.embeddings();
        let threshold = p.similarity_threshold.unwrap_or_else(|| emb.settings().similarity_threshold);
        if !(0.0..=1.0).contains(&threshold) {
            return Ok(input_error(format!("similarity_threshold must be within 0..1, got {threshold}")));
        }
        let vector = match emb.embed_query(&p.query).await {
            Ok(v) => v,
            Err(f) => return Ok(failure(f)),
        };
        let store = self.store();
        let keep = |id: &uuid::Uuid| store.summary_matches(id, p.domain.as_deref(), p.task_type);
        let hits = emb.search_episodes(&vector, p.limit, threshold, &keep);
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let header = match self.store().get_header(h.id) {
                Ok(x) => x,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Ok(store_error(e)),
            };
            out.push(json!({
                "episode_id": h.id,
                "similarity": h.similarity,
                "task_description": header.task_description,
                "domain": header.domain,
                "task_type": header.task_type,
                "outcome": header.outcome.as_ref().map(|o| o.outcome_type),
                "reward": header.reward.as_ref().map(|r| r.total),
                "step_count": header.step_count,
                "started_at": header.started_at,
                "tags": header.context.tags,
            }));
        }
        let active = emb.active();
        // Counts only: the queue itself is not scanned on the query path.
        let (embedded, completed) = (emb.indexed_episodes() as u64, self.store().completed_count());
        structured(json!({
            "results": out,
            "similarity_threshold": threshold,
            "model": active.as_ref().map(|a| &a.info),
            "coverage": {
                "embedded": embedded,
                "completed": completed,
                "not_embedded": completed.saturating_sub(embedded),
            },
        }))
    }
}

impl Server {
    /// Waits until the re-embedding of `queued` items has drained (or
    /// [`REEMBED_WAIT`], or `cancel`), reporting progress when asked;
    /// returns how many items are left.
    async fn wait_reembedded(
        &self,
        queued: u64,
        cancel: &tokio_util::sync::CancellationToken,
        peer: &rmcp::Peer<rmcp::RoleServer>,
        meta: &rmcp::model::RequestMetaObject,
    ) -> u64 {
        let progress = super::progress::Progress::new(peer, meta, Some(queued as f64));
        let deadline = tokio::time::Instant::now() + REEMBED_WAIT;
        // Reports only grow: items queued meanwhile (newly learned
        // patterns) can raise the backlog again.
        let mut reported: Option<u64> = None;
        let left = loop {
            let emb = self.embeddings();
            let left = emb.job_left().min(queued);
            let done = queued - left;
            if reported.is_none_or(|r| done > r) {
                progress.report(done as f64, format!("re-embedded {done} of {queued}"));
                reported = Some(done);
            }
            // Done once the job has ended: the new space serves queries.
            if (left == 0 && emb.job().is_none()) || tokio::time::Instant::now() >= deadline {
                break left;
            }
            tokio::select! {
                () = tokio::time::sleep(REEMBED_POLL) => {}
                () = cancel.cancelled() => break left,
            }
        };
        progress.finish().await;
        left
    }
}

/// Embeds `text` with `embedder`: its provider, model, dimensions, latency,
/// the vector's norm and first values.
async fn probe(embedder: &crate::embeddings::Embedder, text: &str) -> Result<serde_json::Value, crate::embeddings::EmbedFailure> {
    let started = Instant::now();
    let v = embedder.embed(&[text.to_string()]).await?.pop().unwrap_or_default();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    Ok(json!({
        "provider": embedder.info.provider,
        "model": embedder.info.model,
        "dimensions": v.len(),
        "latency_ms": (ms * 100.0).round() / 100.0,
        "norm": norm,
        "preview": v.iter().take(8).collect::<Vec<_>>(),
    }))
}
