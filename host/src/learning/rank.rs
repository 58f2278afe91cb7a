//! Ranking learned records for a task: a blend of word relevance, context
//! match, effectiveness when applied, recency and the success rate of the
//! supporting episodes, each part kept so the caller can say why.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use super::model::{PatternKind, StoredPattern};
use super::patterns::PatternStore;
use crate::memory::text::tokenize;

/// How much each part weighs; they sum to 1.
pub const WEIGHTS: Weights = Weights { relevance: 0.35, context: 0.20, effectiveness: 0.20, recency: 0.10, success: 0.15 };

/// Word matches considered per query, before the domain's own records.
const MAX_MATCHES: usize = 500;
/// Recency halves every this many days.
const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Weights {
    pub relevance: f64,
    pub context: f64,
    pub effectiveness: f64,
    pub recency: f64,
    pub success: f64,
}

/// The parts of a score, each 0..1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct Parts {
    /// BM25 relative to the best match.
    pub relevance: f64,
    /// Same domain, and shared tags.
    pub context: f64,
    /// Success when applied (0.5 before any feedback), moved by the reward
    /// delta.
    pub effectiveness: f64,
    /// Halves every 30 days since last seen.
    pub recency: f64,
    /// Wilson lower bound (95%) of the evidence's success rate.
    pub success: f64,
    /// Cosine similarity to the task, when both have embeddings; blended
    /// into `relevance` half and half with the word score.
    pub semantic: Option<f64>,
}

/// What the ranking is for.
#[derive(Debug, Clone, Default)]
pub struct RankQuery<'a> {
    pub text: &'a str,
    pub domain: Option<&'a str>,
    pub tags: &'a [String],
    /// Similarity of the task to each record with an embedding (none:
    /// words alone).
    pub semantic: Option<&'a HashMap<Uuid, f32>>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ranked {
    pub score: f64,
    pub parts: Parts,
    /// Why it ranks where it does, in words.
    pub reasons: Vec<String>,
    pub pattern: StoredPattern,
}

/// The Wilson score interval's lower bound at 95%: a success rate that
/// accounts for how much evidence there is.
pub fn wilson_lower(rate: f64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let z = 1.96f64;
    let z2 = z * z;
    let centre = rate + z2 / (2.0 * n);
    let margin = z * ((rate * (1.0 - rate) + z2 / (4.0 * n)) / n).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).clamp(0.0, 1.0)
}

fn parts(p: &StoredPattern, bm25: f32, best: f32, q: &RankQuery<'_>, tag_words: &[String], now: DateTime<Utc>) -> Parts {
    let lexical = if best > 0.0 { f64::from(bm25 / best) } else { 0.0 };
    let semantic = q.semantic.and_then(|m| m.get(&p.pattern_id).copied());
    let relevance = crate::embeddings::hybrid::blend(lexical, semantic);
    let domain = match (q.domain, p.domain.as_deref()) {
        (Some(a), Some(b)) if a == b => 1.0,
        (Some(_), None) | (None, _) => 0.5,
        _ => 0.0,
    };
    let context = if tag_words.is_empty() {
        domain
    } else {
        // Tag words are lower case; keys and descriptions mostly are too.
        let shared = tag_words.iter().filter(|t| p.key.contains(t.as_str()) || p.description.contains(t.as_str())).count();
        0.6 * domain + 0.4 * shared as f64 / tag_words.len() as f64
    };
    let e = &p.effectiveness;
    let effectiveness = match e.applied_success_rate() {
        // Laplace-smoothed: one report moves it, many settle it.
        Some(_) => (e.successes_when_applied + 1.0) / (e.times_applied as f64 + 2.0),
        None => 0.5,
    };
    let effectiveness = (effectiveness + e.mean_reward_delta().unwrap_or(0.0).clamp(-0.25, 0.25)).clamp(0.0, 1.0);
    let age_days = (now - p.last_seen).num_seconds().max(0) as f64 / 86_400.0;
    let recency = 0.5f64.powf(age_days / RECENCY_HALF_LIFE_DAYS);
    let success = wilson_lower(p.evidence.success_rate, p.evidence.sample_size);
    Parts { relevance, context, effectiveness, recency, success, semantic: semantic.map(f64::from) }
}

fn total(x: &Parts) -> f64 {
    let w = WEIGHTS;
    w.relevance * x.relevance + w.context * x.context + w.effectiveness * x.effectiveness + w.recency * x.recency + w.success * x.success
}

fn reasons(p: &StoredPattern, x: &Parts, q: &RankQuery<'_>) -> Vec<String> {
    let mut r = Vec::new();
    match x.semantic {
        Some(s) => {
            r.push(format!("relevance {:.0}% from words and meaning", x.relevance * 100.0));
            if s >= 0.3 {
                r.push(format!("similar in meaning to the task (cosine {s:.2})"));
            }
        }
        None if x.relevance > 0.0 => {
            r.push(format!("matches the task's words ({:.0}% of the best match)", x.relevance * 100.0))
        }
        None => {}
    }
    match (q.domain, p.domain.as_deref()) {
        (Some(a), Some(b)) if a == b => r.push(format!("from the same domain ({a})")),
        (Some(_), Some(b)) => r.push(format!("from another domain ({b})")),
        _ => {}
    }
    let ev = &p.evidence;
    r.push(format!(
        "{:.0}% success over {} observation{}",
        ev.success_rate * 100.0,
        ev.sample_size,
        if ev.sample_size == 1 { "" } else { "s" }
    ));
    let e = &p.effectiveness;
    if e.times_applied > 0 {
        r.push(format!("applied {} time(s), {:.0}% successful when applied", e.times_applied, e.successes_when_applied / e.times_applied as f64 * 100.0));
    }
    if let Some(d) = e.mean_reward_delta() {
        r.push(format!("reward {d:+.2} against comparable episodes when applied"));
    }
    r.push(format!("last seen {}", p.last_seen.format("%Y-%m-%d")));
    r
}

/// The `limit` best records passing `keep` and scoring at least
/// `min_score`, best first.
pub fn rank(
    store: &PatternStore,
    q: &RankQuery<'_>,
    limit: usize,
    min_score: f64,
    keep: impl Fn(&StoredPattern) -> bool,
) -> Vec<Ranked> {
    let mut groups = rank_groups::<1>(store, q, limit, min_score, |p| keep(p).then_some(0));
    std::mem::take(&mut groups[0])
}

/// One pass over the candidates, ranked into `N` groups: `group` says
/// which group a record belongs to (`None`: leave it out). Each group gets
/// its `limit` best, best first.
pub fn rank_groups<const N: usize>(
    store: &PatternStore,
    q: &RankQuery<'_>,
    limit: usize,
    min_score: f64,
    group: impl Fn(&StoredPattern) -> Option<usize>,
) -> [Vec<Ranked>; N] {
    let now = Utc::now();
    let tag_words: Vec<String> = q.tags.iter().flat_map(|t| tokenize(t)).collect();
    let extra: Vec<Uuid> = q.semantic.map(|m| m.keys().copied().collect()).unwrap_or_default();
    let scored: Vec<(usize, f64, Parts, Uuid)> = store.score_candidates(q.text, q.domain, &extra, MAX_MATCHES, |p, bm25, best| {
        let g = group(p).filter(|g| *g < N)?;
        let x = parts(p, bm25, best, q, &tag_words, now);
        let score = total(&x);
        (score >= min_score).then_some((g, score, x, p.pattern_id))
    });
    let mut groups: [Vec<(f64, Parts, Uuid)>; N] = std::array::from_fn(|_| Vec::new());
    for (g, score, x, id) in scored {
        groups[g].push((score, x, id));
    }
    groups.map(|mut g| {
        g.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
        g.truncate(limit);
        g.into_iter()
            .filter_map(|(score, x, id)| {
                let p = store.get(&id)?;
                Some(Ranked { score, reasons: reasons(&p, &x, q), parts: x, pattern: p })
            })
            .collect()
    })
}

/// What `recommend_patterns` returns: the `limit` best actionable patterns
/// and the `limit` best heuristics, ranked in one pass.
pub fn recommend(store: &PatternStore, q: &RankQuery<'_>, limit: usize) -> (Vec<Ranked>, Vec<Ranked>) {
    let [patterns, heuristics] = rank_groups::<2>(store, q, limit, 0.0, |p| {
        if p.kind.is_recommendable() {
            Some(0)
        } else {
            (p.kind == PatternKind::Heuristic).then_some(1)
        }
    });
    (patterns, heuristics)
}
