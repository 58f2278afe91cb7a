//! The learning tools: what was learned from episodes, recommendations
//! ranked by what worked, feedback that improves them, and time-series
//! analysis of episode metrics.

use std::collections::BTreeMap;

use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::memory_tools::{store_error, structured, to_value};
use super::params::{Parameters, input_error, params_or_return};
use super::server::Server;
use crate::learning::{PatternKind, PatternQuery, Scored, StoredPattern, TalliesReport, series_rows};
use crate::memory::{OutcomeType, TaskType, parse_id};
use crate::world::statistics::{self as wstats, AnalysisConfig, AnalysisType, Series};

/// Most results one call returns.
const MAX_LIMIT: usize = 100;

fn default_min_success_rate() -> f64 {
    0.7
}
fn default_analyze_limit() -> usize {
    20
}
fn default_search_limit() -> usize {
    5
}
fn default_min_relevance() -> f64 {
    0.3
}
fn default_recommend_limit() -> usize {
    3
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzePatternsParams {
    /// Only patterns learned from this kind of task (patterns with no task
    /// type, e.g. from third-party analyzers, are included too).
    pub task_type: TaskType,
    /// Only patterns whose supporting episodes succeeded at least this
    /// often, 0..1 (default 0.7).
    #[serde(default = "default_min_success_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_success_rate: f64,
    /// At most this many patterns, and as many heuristics, 1..100 (default 20).
    #[serde(default = "default_analyze_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: usize,
    /// Only this domain, when given.
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPatternsParams {
    /// Words to find, e.g. "flaky integration tests".
    pub query: String,
    /// The domain the search is for; its patterns rank higher.
    pub domain: String,
    /// Tags of the task; patterns that mention them rank higher.
    #[serde(default)]
    pub tags: Vec<String>,
    /// At most this many results, 1..100 (default 5).
    #[serde(default = "default_search_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: usize,
    /// Drop results whose blended score is below this, 0..1 (default 0.3).
    #[serde(default = "default_min_relevance")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_relevance: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendPatternsParams {
    /// The new task, in words.
    pub task_description: String,
    /// Its domain, e.g. "web-api".
    pub domain: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// At most this many recommendations, and as many heuristics, 1..100
    /// (default 3).
    #[serde(default = "default_recommend_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPatternFeedbackParams {
    /// The pattern (or heuristic) id, from analyze, search or recommend.
    pub pattern_id: String,
    /// Whether the agent applied it.
    pub applied: bool,
    /// How the task went: success, partial_success or failure.
    pub outcome: OutcomeType,
    /// The episode the pattern was applied in, if recorded: its reward is
    /// compared with comparable episodes (same domain and task type).
    #[serde(default)]
    pub episode_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Descriptive statistics, trend with significance, change points,
    /// anomalies.
    Statistical,
    /// Forecasts with prediction intervals.
    Predictive,
    /// Both, plus correlations between series.
    Comprehensive,
}

fn default_horizon() -> u32 {
    5
}
fn default_confidence() -> f64 {
    0.95
}
fn default_anomaly_threshold() -> f64 {
    3.5
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Points to forecast ahead (default 5, at most 1000).
    #[serde(default = "default_horizon")]
    #[schemars(range(max = 1000))]
    pub horizon: u32,
    /// Confidence level for intervals and tests, in (0.5, 1) (default 0.95).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Robust z-score beyond which a point is an anomaly (default 3.5).
    #[serde(default = "default_anomaly_threshold")]
    pub anomaly_threshold: f64,
    /// From stored episodes: only this domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// From stored episodes: only this task type.
    #[serde(default)]
    pub task_type: Option<TaskType>,
    /// From stored episodes: which of reward, duration_ms, success_rate,
    /// step_count (default all).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// From stored episodes: episodes per point (default: enough for about
    /// 100 points).
    #[serde(default)]
    pub bucket_size: Option<usize>,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            horizon: default_horizon(),
            confidence: default_confidence(),
            anomaly_threshold: default_anomaly_threshold(),
            domain: None,
            task_type: None,
            metrics: Vec::new(),
            bucket_size: None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvancedPatternAnalysisParams {
    /// statistical, predictive or comprehensive.
    pub analysis_type: AnalysisKind,
    /// Series to analyse, by name: `{"latency": [120, 130, ...]}` (points in
    /// time order). When absent, series come from stored episodes.
    #[serde(default)]
    pub time_series_data: Option<BTreeMap<String, Vec<f64>>>,
    /// Options; see each field.
    #[serde(default)]
    pub config: Option<AnalysisOptions>,
}

fn check_limit(limit: usize) -> Result<(), CallToolResult> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(input_error(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    Ok(())
}

fn check_unit(name: &str, x: f64) -> Result<(), CallToolResult> {
    if !(0.0..=1.0).contains(&x) {
        return Err(input_error(format!("{name} must be between 0 and 1, got {x}")));
    }
    Ok(())
}

macro_rules! or_return {
    ($r:expr) => {
        match $r {
            Ok(v) => v,
            Err(e) => return Ok(e),
        }
    };
}

/// `v` with the scorer's weights (when `weights`) and, when a third-party
/// scorer failed and the built-in one ranked instead, its note.
fn with_scorer<T>(mut v: Value, scored: &Scored<T>, weights: bool) -> Value {
    if weights {
        v["weights"] = Value::Object(scored.weights.clone());
    }
    if let Some(note) = &scored.note {
        v["scorer_note"] = json!(note);
    }
    v
}

fn one_line(p: &StoredPattern) -> String {
    format!(
        "[{}] {} ({:.0}% of {}, {})",
        serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        p.description,
        p.evidence.success_rate * 100.0,
        p.evidence.sample_size,
        p.provenance.analyzer
    )
}

/// `v` with the note saying why meaning took no part, when it did not.
fn with_note(mut v: Value, note: Option<String>) -> Value {
    if let Some(note) = note {
        v["note"] = json!(note);
    }
    v
}

fn with_text(v: Value, text: String) -> Result<CallToolResult, ErrorData> {
    let mut out = CallToolResult::structured(v);
    out.content.insert(0, ContentBlock::text(text));
    Ok(out)
}

/// Patterns compared by meaning per query: enough to cover every record
/// in practice (the pattern index is searched exactly below 20k).
const SEMANTIC_CANDIDATES: usize = 1_000;

impl Server {
    /// The analyzers, whose scorers rank; waits while they load.
    async fn scorer(&self) -> Result<std::sync::Arc<crate::learning::AnalyzerSet>, CallToolResult> {
        self.learning().ready().await.map_err(|e| input_error(format!("the scorer is unavailable: {e}")))
    }

    /// Similarity of `text` to the learned records with embeddings, when
    /// embeddings are available; else words alone rank, and the note says
    /// why (as `query_memory`'s does).
    async fn pattern_similarity(&self, text: &str) -> (Option<std::collections::HashMap<uuid::Uuid, f32>>, Option<String>) {
        let emb = self.embeddings();
        if emb.embedder().is_err() {
            return (None, emb.lexical_note());
        }
        if text.trim().is_empty() {
            return (None, None);
        }
        match emb.embed_query(text).await {
            Ok(v) => {
                let scores = emb.pattern_scores(&v, SEMANTIC_CANDIDATES);
                ((!scores.is_empty()).then_some(scores), None)
            }
            Err(f) => (None, Some(format!("lexical only: {f}"))),
        }
    }
}

#[tool_router(router = pattern_router, vis = "pub(crate)")]
impl Server {
    #[tool(description = "Patterns learned from completed episodes of a task type (tool sequences, decision points, error recoveries, context patterns, and third-party analyzers' patterns), with the heuristics (condition → action) learned beside them, each with its evidence (episode ids, success rate, sample size), confidence and provenance, best-supported first.")]
    pub(super) async fn analyze_patterns(&self, params: Parameters<AnalyzePatternsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        or_return!(check_limit(p.limit));
        or_return!(check_unit("min_success_rate", p.min_success_rate));
        let domain_ok = |x: &StoredPattern| p.domain.is_none() || x.domain.is_none() || x.domain == p.domain;
        let selected = self.patterns().select(|x| {
            x.evidence.success_rate >= p.min_success_rate
                && domain_ok(x)
                && (x.kind == PatternKind::Heuristic || x.task_type.is_none_or(|t| t == p.task_type))
        });
        // Best-supported first, as the scorer orders them.
        let set = or_return!(self.scorer().await);
        let mut ordered = match Box::pin(set.order_by_support(selected)).await {
            Ok(o) => o,
            Err(f) => return Ok(input_error(format!("the built-in scorer failed: {f}"))),
        };
        let (mut heuristics, mut patterns): (Vec<StoredPattern>, Vec<StoredPattern>) =
            std::mem::take(&mut ordered.value).into_iter().partition(|x| x.kind == PatternKind::Heuristic);
        let total = patterns.len();
        patterns.truncate(p.limit);
        heuristics.truncate(p.limit);
        let text = match patterns.first() {
            Some(best) => format!("{} patterns (of {total}) and {} heuristics; best: {}", patterns.len(), heuristics.len(), one_line(best)),
            None => "no pattern meets the criteria yet".to_string(),
        };
        let backlog = self.store().analysis_backlog().unwrap_or(0);
        let v = json!({
            "patterns": to_value(&patterns)?,
            "heuristics": to_value(&heuristics)?,
            "total_matching": total,
            "analysis_backlog": backlog,
        });
        with_text(with_scorer(v, &ordered, false), text)
    }

    #[tool(description = "Search learned patterns and heuristics by words, ranked by a blend of relevance, domain and tag match, effectiveness when applied, recency and success rate.")]
    pub(super) async fn search_patterns(&self, params: Parameters<SearchPatternsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        or_return!(check_limit(p.limit));
        or_return!(check_unit("min_relevance", p.min_relevance));
        if p.query.trim().is_empty() {
            return Ok(input_error("query must not be empty"));
        }
        let (semantic, note) = self.pattern_similarity(&p.query).await;
        let q = PatternQuery { text: &p.query, domain: Some(&p.domain), tags: &p.tags, semantic: semantic.as_ref() };
        let set = or_return!(self.scorer().await);
        let mut scored = match Box::pin(set.rank_patterns(self.patterns(), &q, 1, p.limit, p.min_relevance, |_| Some(0))).await {
            Ok(s) => s,
            Err(f) => return Ok(input_error(format!("the built-in scorer failed: {f}"))),
        };
        let ranked = std::mem::take(&mut scored.value[0]);
        let ids: Vec<_> = ranked.iter().map(|r| r.pattern.pattern_id).collect();
        if let Err(e) = self.patterns().mark_retrieved(&ids) {
            tracing::warn!(error = %e, "could not count retrievals");
        }
        let text = ranked.iter().map(|r| format!("{:.2} {}", r.score, one_line(&r.pattern))).collect::<Vec<_>>().join("\n");
        let v = with_note(with_scorer(json!({"results": to_value(&ranked)?}), &scored, true), note);
        with_text(v, if text.is_empty() { "no matching pattern".into() } else { text })
    }

    #[tool(description = "Recommend learned patterns for a new task, ranked by relevance, context match, effectiveness when applied, recency and success rate; each says why it was chosen. Also returns the best matching heuristics. Report back with record_pattern_feedback so recommendations improve.")]
    pub(super) async fn recommend_patterns(&self, params: Parameters<RecommendPatternsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        or_return!(check_limit(p.limit));
        if p.task_description.trim().is_empty() {
            return Ok(input_error("task_description must not be empty"));
        }
        let (semantic, note) = self.pattern_similarity(&p.task_description).await;
        let q = PatternQuery { text: &p.task_description, domain: Some(&p.domain), tags: &p.tags, semantic: semantic.as_ref() };
        let set = or_return!(self.scorer().await);
        // Actionable patterns and heuristics, ranked in one call.
        let group = |x: &StoredPattern| {
            if x.kind.is_recommendable() {
                Some(0)
            } else {
                (x.kind == PatternKind::Heuristic).then_some(1)
            }
        };
        let mut scored = match Box::pin(set.rank_patterns(self.patterns(), &q, 2, p.limit, 0.0, group)).await {
            Ok(s) => s,
            Err(f) => return Ok(input_error(format!("the built-in scorer failed: {f}"))),
        };
        let (recs, heur) = (std::mem::take(&mut scored.value[0]), std::mem::take(&mut scored.value[1]));
        let ids: Vec<_> = recs.iter().chain(&heur).map(|r| r.pattern.pattern_id).collect();
        if let Err(e) = self.patterns().mark_retrieved(&ids) {
            tracing::warn!(error = %e, "could not count retrievals");
        }
        let text = match recs.first() {
            Some(r) => format!("{} recommendations; first: {} because {}", recs.len(), one_line(&r.pattern), r.reasons.join("; ")),
            None => "nothing learned yet matches this task".into(),
        };
        let v = with_scorer(json!({"recommendations": to_value(&recs)?, "heuristics": to_value(&heur)?}), &scored, true);
        with_text(with_note(v, note), text)
    }

    #[tool(description = "Report whether a recommended pattern was applied and how the task went. Updates its effectiveness (times applied, success when applied, and, given the episode, its reward against comparable episodes), which moves future rankings.")]
    pub(super) async fn record_pattern_feedback(&self, params: Parameters<RecordPatternFeedbackParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let id = match parse_id(&p.pattern_id) {
            Ok(id) => id,
            Err(_) => return Ok(input_error(format!("pattern_id {:?} is not a pattern id (a UUID)", p.pattern_id))),
        };
        if self.patterns().get(&id).is_none() {
            return Ok(input_error(format!("pattern {id} not found")));
        }
        let mut episode = None;
        if let Some(raw) = &p.episode_id {
            let eid = match parse_id(raw) {
                Ok(x) => x,
                Err(e) => return Ok(input_error(e.to_string())),
            };
            if let Err(e) = self.store().get_header(eid) {
                return Ok(store_error(e));
            }
            // Its reward and the reward totals of its comparable episodes:
            // the tallies component computes the delta from them.
            episode = self.store().comparable_rewards(&eid);
        }
        let set = match self.learning().ready().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(format!("the pattern analyzer is unavailable: {e}"))),
        };
        let report = TalliesReport { applied: p.applied, outcome: p.outcome, episode };
        // Read, count and store under the tallies lock, so concurrent
        // reports on one record all count.
        let _tallies = self.patterns().tallies_lock().await;
        let Some(current) = self.patterns().get(&id) else {
            return Ok(input_error(format!("pattern {id} not found")));
        };
        let counted = match set.builtin.apply_feedback(&set, &current.effectiveness, report).await {
            Ok(c) => c,
            Err(f) => return Ok(input_error(format!("the feedback was not recorded: the built-in analyzer's tallies {f}"))),
        };
        match self.patterns().set_effectiveness(id, counted.effectiveness) {
            Ok(Some(updated)) => structured(json!({
                "pattern_id": id,
                "effectiveness": to_value(&updated.effectiveness)?,
                "reward_delta": counted.reward_delta,
            })),
            Ok(None) => Ok(input_error(format!("pattern {id} not found"))),
            Err(e) => Ok(store_error(e)),
        }
    }

    #[tool(description = "Time-series analysis of episode metrics (reward, duration_ms, success_rate, step_count over time, per domain or task type) or of series you pass in time_series_data. statistical: descriptive statistics, linear trend with a t-test, change points, anomalies. predictive: forecasts with prediction intervals. comprehensive: both, plus Pearson correlations with p-values.")]
    pub(super) async fn advanced_pattern_analysis(&self, params: Parameters<AdvancedPatternAnalysisParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let opts = p.config.unwrap_or_default();
        let data: Vec<Series> = match p.time_series_data {
            Some(map) => {
                if map.is_empty() {
                    return Ok(input_error("time_series_data has no series"));
                }
                map.into_iter().map(|(name, values)| Series { name, points: values.into_iter().enumerate().map(|(i, v)| (i as u64, v)).collect() }).collect()
            }
            None => {
                let store = self.store_arc().clone();
                let (domain, task_type) = (opts.domain.clone(), opts.task_type);
                let rows = tokio::task::spawn_blocking(move || series_rows(&store, domain.as_deref(), task_type))
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let rows = match rows {
                    Ok(r) => r,
                    Err(e) => return Ok(store_error(e)),
                };
                let set = match self.learning().ready().await {
                    Ok(s) => s,
                    Err(e) => return Ok(input_error(format!("the pattern analyzer is unavailable: {e}"))),
                };
                let bucket = opts.bucket_size.map(|b| u32::try_from(b).unwrap_or(u32::MAX));
                match set.builtin.episode_series(&set, &rows, &opts.metrics, bucket).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => return Ok(input_error(e)),
                    Err(f) => return Ok(input_error(format!("the analysis failed: {f}"))),
                }
            }
        };
        let set = match self.learning().ready().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(format!("the pattern analyzer is unavailable: {e}"))),
        };
        let kind = match p.analysis_type {
            AnalysisKind::Statistical => AnalysisType::Statistical,
            AnalysisKind::Predictive => AnalysisType::Predictive,
            AnalysisKind::Comprehensive => AnalysisType::Comprehensive,
        };
        let config = AnalysisConfig { horizon: opts.horizon, confidence: opts.confidence, anomaly_threshold: opts.anomaly_threshold };
        match set.builtin.analyze_series(set.memory(), kind, config, &data).await {
            Ok(Ok(report)) => {
                let text = summary(&report);
                with_text(report_json(&report), text)
            }
            Ok(Err(e)) => Ok(input_error(e)),
            Err(f) => Ok(input_error(format!("the analysis failed: {f}"))),
        }
    }
}

fn summary(r: &wstats::Report) -> String {
    r.series
        .iter()
        .map(|s| {
            let mut parts = vec![format!("{}:", s.name)];
            if let Some(d) = &s.descriptive {
                parts.push(format!("{} points, mean {:.3}", d.count, d.mean));
            }
            if let Some(t) = &s.trend {
                parts.push(format!(
                    "trend {:+.4}/point (p={:.3}{})",
                    t.slope,
                    t.p_value,
                    if t.significant { ", significant" } else { "" }
                ));
            }
            if !s.change_points.is_empty() {
                let at: Vec<String> = s.change_points.iter().map(|c| c.index.to_string()).collect();
                parts.push(format!("change points at {}", at.join(", ")));
            }
            if !s.anomalies.is_empty() {
                let at: Vec<String> = s.anomalies.iter().map(|a| a.index.to_string()).collect();
                parts.push(format!("anomalies at {}", at.join(", ")));
            }
            if let Some(f) = s.forecast.last() {
                parts.push(format!("forecast {:.3} [{:.3}, {:.3}] in {} points", f.value, f.lower, f.upper, f.step));
            }
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn report_json(r: &wstats::Report) -> Value {
    let series: Vec<Value> = r
        .series
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "descriptive": s.descriptive.as_ref().map(|d| json!({
                    "count": d.count, "mean": d.mean, "std_dev": d.std_dev, "min": d.min, "max": d.max,
                    "median": d.median, "p25": d.p25, "p75": d.p75,
                })),
                "trend": s.trend.as_ref().map(|t| json!({
                    "slope": t.slope, "intercept": t.intercept, "r_squared": t.r_squared,
                    "p_value": t.p_value, "significant": t.significant,
                })),
                "change_points": s.change_points.iter().map(|c| json!({
                    "index": c.index, "time_ms": c.time_ms, "mean_before": c.mean_before,
                    "mean_after": c.mean_after, "score": finite(c.score),
                })).collect::<Vec<_>>(),
                "anomalies": s.anomalies.iter().map(|a| json!({
                    "index": a.index, "time_ms": a.time_ms, "value": a.value, "score": a.score,
                })).collect::<Vec<_>>(),
                "forecast": s.forecast.iter().map(|f| json!({
                    "step": f.step, "value": f.value, "lower": f.lower, "upper": f.upper,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let correlations: Vec<Value> =
        r.correlations.iter().map(|c| json!({"a": c.a, "b": c.b, "pearson": c.pearson, "p_value": c.p_value})).collect();
    json!({"series": series, "correlations": correlations})
}

/// JSON has no infinity: an unbounded score is reported as null.
fn finite(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}
