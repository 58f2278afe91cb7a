//! The episodic-memory tools: the episode lifecycle, queries and quality.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::params::{Parameters, input_error, params_or_return};
use super::server::Server;
use crate::memory::{Outcome, StepResult, TaskContext, TaskType, parse_id};
use super::quality_report::{QualityReport, TimeRange};
use crate::learning::{CompleteError, EpisodeCandidate, complete_episode, episode_summary, nanos};
use crate::world::episode_analysis::QualityRequest;
use crate::memory::{Hit, Query, SortBy, run_query};
use crate::memory::{NewEpisode, NewStep, StoreError};
use crate::memory::EpisodeStore;

/// Most ids one `bulk_episodes` call may ask for.
pub const MAX_BULK_IDS: usize = 100;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEpisodeParams {
    /// What the task is, in words (at most 10,000 characters).
    pub task_description: String,
    /// The area of work, e.g. "web-api"; used to filter queries.
    pub domain: String,
    /// code_generation, debugging, refactoring, testing, analysis or documentation.
    pub task_type: TaskType,
    /// Language, framework, complexity and tags.
    #[serde(default)]
    pub context: TaskContext,
    /// Free string key/value pairs.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEpisodeStepParams {
    /// The episode's id, from create_episode.
    pub episode_id: String,
    /// 1 for the first step, then each next number in turn.
    #[schemars(range(min = 1))]
    pub step_number: u32,
    /// The tool used, e.g. "cargo".
    pub tool: String,
    /// What was done with it, e.g. "run tests".
    pub action: String,
    /// The tool's parameters, a JSON object of at most 64 KB.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// `{type: success|error|timeout, output?, message?}`.
    pub result: StepResult,
    /// How long the step took.
    #[serde(default)]
    pub latency_ms: u64,
    /// Tokens the step used, if known.
    #[serde(default)]
    pub tokens_used: Option<u64>,
    /// When the step started (RFC 3339); `latency_ms` before now when absent.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteEpisodeParams {
    /// The episode's id.
    pub episode_id: String,
    /// How it ended.
    pub outcome: Outcome,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EpisodeIdParams {
    /// The episode's id.
    pub episode_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEpisodeParams {
    /// The episode's id.
    pub episode_id: String,
    /// Replaces the episode's tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Merged into the metadata; an empty value removes the key.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteEpisodeParams {
    /// The episode's id.
    pub episode_id: String,
    /// Must be true: deletion cannot be undone.
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEpisodesParams {
    /// Up to 100 episode ids; missing ones are reported, not fatal.
    #[schemars(length(max = 100))]
    pub episode_ids: Vec<String>,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMemoryParams {
    /// Words to search for in descriptions, steps and reflections.
    pub query: String,
    /// Only this domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Only this task type.
    #[serde(default)]
    pub task_type: Option<TaskType>,
    /// 1 to 1000; default 10.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: usize,
    /// relevance (default), newest, oldest, duration or success.
    #[serde(default)]
    pub sort: SortBy,
}

fn default_threshold() -> f64 {
    0.7
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityMetricsParams {
    /// 24h, 7d (default), 30d, 90d or all.
    #[serde(default)]
    pub time_range: TimeRange,
    /// Add per-period buckets and the trend's direction.
    #[serde(default)]
    pub include_trends: bool,
    /// Reward at or above which an episode counts as good; default 0.7.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub quality_threshold: f64,
}

/// Parses an episode id or returns its error as an `isError` result.
macro_rules! id_or_return {
    ($raw:expr) => {
        match parse_id(&$raw) {
            Ok(id) => id,
            Err(e) => return Ok(input_error(e.to_string())),
        }
    };
}

pub(crate) fn store_error(e: StoreError) -> CallToolResult {
    input_error(e.to_string())
}

pub(crate) fn structured(v: Value) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::structured(v))
}

pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ErrorData> {
    serde_json::to_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// Runs a blocking store call off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<EpisodeStore>,
    f: impl FnOnce(&EpisodeStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, ErrorData> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ErrorData::internal_error(format!("storage task failed: {e}"), None))
}

/// A hit and, when ranked with embeddings, its word and meaning parts.
type BlendedHit = (Hit, Option<(f64, Option<f32>)>);

impl Server {
    /// The word matches plus the nearest episodes by meaning, with their
    /// BM25 scores and similarity to `vector`, ordered by the scorer (one
    /// call): the best `limit` with their parts, and the scorer's note.
    async fn blend(&self, vector: &crate::embeddings::QueryVector, p: &QueryMemoryParams, hits: &[Hit], limit: usize) -> Result<(Vec<BlendedHit>, Option<String>), String> {
        let best = hits.iter().map(|h| h.score).fold(0.0f32, f32::max);
        let mut bm25: std::collections::HashMap<uuid::Uuid, f32> = hits.iter().map(|h| (h.episode_id, h.score)).collect();
        let store = self.store();
        let keep = |id: &uuid::Uuid| store.summary_matches(id, p.domain.as_deref(), p.task_type);
        let near = self.embeddings().search_episodes(vector, (limit * 4).max(50), 0.0, &keep);
        for n in &near {
            bm25.entry(n.id).or_insert(0.0);
        }
        let semantic = self.embeddings().episode_scores(vector, bm25.keys().copied());
        let candidates: Vec<EpisodeCandidate> =
            bm25.into_iter().map(|(id, bm25)| EpisodeCandidate { id, bm25, semantic: semantic.get(&id).copied() }).collect();
        let set = self.learning().ready().await.map_err(|e| format!("the scorer is unavailable: {e}"))?;
        let scored = set.blend_episodes(best, limit, &candidates).await.map_err(|f| format!("the built-in scorer failed: {f}"))?;
        let hits = scored.value.into_iter().map(|b| (Hit { episode_id: b.id, score: b.score as f32 }, Some((b.lexical, b.semantic)))).collect();
        Ok((hits, scored.note))
    }
}

#[tool_router(router = memory_router, vis = "pub(crate)")]
impl Server {
    #[tool(description = "Start an episode: a task an agent is about to work on. Returns {episode_id}. Record its steps with add_episode_step and finish it with complete_episode.")]
    pub(super) async fn create_episode(&self, params: Parameters<CreateEpisodeParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let new = NewEpisode {
            task_description: p.task_description,
            domain: p.domain,
            task_type: p.task_type,
            context: p.context,
            metadata: p.metadata,
        };
        match self.store().create_episode(new) {
            Ok(id) => structured(json!({"episode_id": id})),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Append the next step to an in-progress episode. Steps must come in order: step_number 1, 2, 3...")]
    pub(super) async fn add_episode_step(&self, params: Parameters<AddEpisodeStepParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        let step = NewStep {
            step_number: p.step_number,
            timestamp: p.timestamp,
            tool: p.tool,
            action: p.action,
            parameters: p.parameters,
            result: p.result,
            latency_ms: p.latency_ms,
            tokens_used: p.tokens_used,
        };
        match self.store().add_step(id, step) {
            Ok(n) => structured(json!({"episode_id": id, "step_number": n})),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Finish an episode with its outcome. Returns {reward, reflection} once the episode is durable on disk. Completing twice is an error.")]
    pub(super) async fn complete_episode(&self, params: Parameters<CompleteEpisodeParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        let set = match self.learning().ready().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(format!("episode {id} was not completed: the pattern analyzer is unavailable ({e}); it is still in progress")))
        };
        match complete_episode(&set, id, p.outcome).await {
            Ok(h) => {
                // Learning happens off this path; the worker is only told.
                self.learning().wake();
                self.embeddings().notify();
                structured(json!({
                "episode_id": id,
                "reward": to_value(&h.reward)?,
                "reflection": to_value(&h.reflection)?,
                "duration_ms": h.duration_ms(),
                }))
            }
            Err(CompleteError::Store(e)) => Ok(store_error(e)),
            Err(e) => Ok(input_error(e.to_string())),
        }
    }

    #[tool(description = "Get an episode with its steps, outcome, reward and reflection.")]
    pub(super) async fn get_episode(&self, params: Parameters<EpisodeIdParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        match self.store().get_episode(id) {
            Ok(ep) => structured(to_value(&ep)?),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "An episode's steps in time order, with each step's latency, its offset from the start and the gap since the previous step ended.")]
    pub(super) async fn get_episode_timeline(&self, params: Parameters<EpisodeIdParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        let ep = match self.store().get_episode(id) {
            Ok(ep) => ep,
            Err(e) => return Ok(store_error(e)),
        };
        let start = ep.header.started_at;
        let mut prev_end: Option<DateTime<Utc>> = None;
        let mut rows = Vec::with_capacity(ep.steps.len());
        for s in &ep.steps {
            let end = s.timestamp + chrono::Duration::milliseconds(s.latency_ms as i64);
            rows.push(json!({
                "step_number": s.step_number,
                "timestamp": s.timestamp,
                "tool": s.tool,
                "action": s.action,
                "status": s.result.status,
                "latency_ms": s.latency_ms,
                "offset_ms": (s.timestamp - start).num_milliseconds(),
                "gap_ms": prev_end.map(|p| (s.timestamp - p).num_milliseconds()),
            }));
            prev_end = Some(end);
        }
        structured(json!({
            "episode_id": id,
            "started_at": start,
            "completed_at": ep.header.completed_at,
            "duration_ms": ep.header.duration_ms(),
            "steps": rows,
        }))
    }

    #[tool(description = "Replace an episode's tags and/or merge into its metadata (an empty value removes a key).")]
    pub(super) async fn update_episode(&self, params: Parameters<UpdateEpisodeParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        if p.tags.is_none() && p.metadata.is_none() {
            return Ok(input_error("nothing to update: give tags and/or metadata"));
        }
        match self.store().update_episode(id, p.tags, p.metadata) {
            Ok(h) => structured(json!({"episode_id": id, "tags": h.context.tags, "metadata": h.metadata})),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Delete an episode and its steps. Requires confirm: true; cannot be undone.")]
    pub(super) async fn delete_episode(&self, params: Parameters<DeleteEpisodeParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = id_or_return!(p.episode_id);
        if !p.confirm {
            return Ok(input_error("confirm must be true to delete an episode; nothing was deleted"));
        }
        match blocking(self.store_arc(), move |s| s.delete_episode(id)).await? {
            Ok(steps) => structured(json!({"episode_id": id, "deleted": true, "steps_deleted": steps})),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Get up to 100 episodes by id. Ids that do not exist are listed under `missing`; malformed ones under `invalid`.")]
    pub(super) async fn bulk_episodes(&self, params: Parameters<BulkEpisodesParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if p.episode_ids.len() > MAX_BULK_IDS {
            return Ok(input_error(format!("episode_ids has {} ids; the limit is {MAX_BULK_IDS}", p.episode_ids.len())));
        }
        let (mut found, mut missing, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
        for raw in &p.episode_ids {
            match parse_id(raw) {
                Err(e) => invalid.push(json!({"episode_id": raw, "error": e.to_string()})),
                Ok(id) => match self.store().get_episode(id) {
                    Ok(ep) => found.push(to_value(&ep)?),
                    Err(StoreError::NotFound(_)) => missing.push(raw.clone()),
                    Err(e) => return Ok(store_error(e)),
                },
            }
        }
        structured(json!({"episodes": found, "missing": missing, "invalid": invalid}))
    }

    #[tool(description = "Search past episodes by words (BM25 over descriptions, steps and reflections), filtered by domain and task type, sorted by relevance, newest, oldest, duration or success. With embeddings, relevance blends in similarity of meaning.")]
    pub(super) async fn query_memory(&self, params: Parameters<QueryMemoryParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if !(1..=1000).contains(&p.limit) {
            return Ok(input_error(format!("limit must be between 1 and 1000, got {}", p.limit)));
        }
        let hybrid = p.sort == SortBy::Relevance && self.embeddings().searchable();
        let wanted = p.limit;
        // With embeddings, widen the word matches so meaning can reorder them.
        let limit = if hybrid { (wanted * 4).max(50) } else { wanted };
        let q = Query { text: p.query.clone(), domain: p.domain.clone(), task_type: p.task_type, limit, sort: p.sort };
        let mut semantic_note = if hybrid || p.sort != SortBy::Relevance { None } else { self.embeddings().lexical_note() };
        let mut scorer_note = None;
        let ran = match run_query(self.store(), &q) {
            Ok((hits, total)) if hybrid && !crate::memory::text::tokenize(&p.query).is_empty() => {
                let blended = match self.embeddings().embed_query(&p.query).await {
                    Ok(v) => Box::pin(self.blend(&v, &p, &hits, wanted)).await,
                    Err(f) => Err(f.to_string()),
                };
                match blended {
                    Ok((blended, note)) => {
                        scorer_note = note;
                        Ok((blended, total))
                    }
                    Err(f) => {
                        semantic_note = Some(format!("lexical only: {f}"));
                        Ok((hits.into_iter().take(wanted).map(|h| (h, None)).collect(), total))
                    }
                }
            }
            Ok((hits, total)) => Ok((hits.into_iter().map(|h| (h, None)).collect::<Vec<_>>(), total)),
            Err(e) => Err(e),
        };
        match ran {
            Ok((hits, total)) => {
                let mut out = Vec::with_capacity(hits.len());
                for (h, parts) in hits {
                    let header = match self.store().get_header(h.episode_id) {
                        Ok(x) => x,
                        Err(StoreError::NotFound(_)) => continue,
                        Err(e) => return Ok(store_error(e)),
                    };
                    out.push(json!({
                        "episode_id": h.episode_id,
                        "score": h.score,
                        "task_description": header.task_description,
                        "domain": header.domain,
                        "task_type": header.task_type,
                        "status": header.status(),
                        "outcome": header.outcome.as_ref().map(|o| o.outcome_type),
                        "reward": header.reward.as_ref().map(|r| r.total),
                        "step_count": header.step_count,
                        "duration_ms": header.duration_ms(),
                        "started_at": header.started_at,
                        "tags": header.context.tags,
                    }));
                    if let (Some((lexical, semantic)), Some(last)) = (parts, out.last_mut()) {
                        last["lexical"] = json!(lexical);
                        last["semantic"] = json!(semantic);
                    }
                }
                let ranking = if hybrid && semantic_note.is_none() { "hybrid" } else { "lexical" };
                let mut v = json!({"results": out, "total_matches": total, "ranking": ranking, "note": semantic_note, "index": self.store().index_coverage()});
                if let Some(note) = scorer_note {
                    v["scorer_note"] = json!(note);
                }
                structured(v)
            }
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Quality of recorded work over a time range: success rates, average reward, the reward distribution, and optionally its trend.")]
    pub(super) async fn quality_metrics(&self, params: Parameters<QualityMetricsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if !(0.0..=2.0).contains(&p.quality_threshold) {
            return Ok(input_error("quality_threshold must be between 0 and 2"));
        }
        let now = Utc::now();
        let since = p.time_range.since(now);
        let rows: Vec<_> = match self.store().headers_since(since) {
            Ok(h) => h.iter().map(episode_summary).collect(),
            Err(e) => return Ok(store_error(e)),
        };
        let set = match self.learning().ready().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(format!("the pattern analyzer is unavailable: {e}"))),
        };
        let request = QualityRequest {
            threshold: p.quality_threshold,
            trends: p.include_trends,
            since_ns: since.map(nanos),
            now_ns: nanos(now),
        };
        let r: QualityReport = match set.builtin.report_quality(&set, &rows, request).await {
            Ok(r) => r.into(),
            Err(f) => return Ok(input_error(format!("the quality report failed: {f}"))),
        };
        let mut v = to_value(&r)?;
        v["time_range"] = to_value(&p.time_range)?;
        let mut out = CallToolResult::structured(v);
        out.content.insert(
            0,
            ContentBlock::text(format!(
                "{} completed of {} episodes; success rate {:.0}%, average reward {:.2}",
                r.completed,
                r.episodes,
                r.success_rate * 100.0,
                r.average_reward
            )),
        );
        Ok(out)
    }
}
