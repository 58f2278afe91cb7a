//! Ranking learned patterns and heuristics for a task: a blend of word
//! relevance (and meaning), context match, effectiveness when applied,
//! recency and the success rate of the supporting episodes, each part kept
//! so the tools can say why.

use super::{Uuid, WEIGHTS, blend, date, relative, wilson_lower};

/// Recency halves every this many days.
const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;
/// Most groups one query may rank into.
pub const MAX_GROUPS: u32 = 16;

/// What the ranking is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Distinct domains; the query and candidates refer to them by index.
    pub domains: Vec<String>,
    pub domain: Option<u32>,
    pub tag_words: u32,
    pub best_bm25: f32,
    pub now_ms: i64,
    pub groups: u32,
    pub limit: u32,
    pub min_score: f64,
}

/// One learned record's raw features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: Uuid,
    pub group: u32,
    pub bm25: f32,
    pub semantic: Option<f32>,
    pub domain: Option<u32>,
    pub tags_matched: u32,
    pub sample_size: u64,
    pub success_rate: f64,
    pub times_applied: u64,
    pub successes_when_applied: f64,
    pub reward_delta_sum: f64,
    pub reward_delta_count: u64,
    pub last_seen_ms: i64,
}

/// The parts of a score, each 0..1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Parts {
    /// BM25 relative to the best match, blended half and half with the
    /// cosine similarity when there is one.
    pub relevance: f64,
    /// Same domain, and shared tags.
    pub context: f64,
    /// Success when applied (0.5 before any feedback), moved by the
    /// reward delta.
    pub effectiveness: f64,
    /// Halves every 30 days since last seen.
    pub recency: f64,
    /// Wilson lower bound (95%) of the evidence's success rate.
    pub success: f64,
    pub semantic: Option<f64>,
}

/// A candidate's place in its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub index: u32,
    pub score: f64,
    pub parts: Parts,
    pub reasons: Vec<String>,
}

fn mean_reward_delta(c: &Candidate) -> Option<f64> {
    (c.reward_delta_count > 0).then(|| c.reward_delta_sum / c.reward_delta_count as f64)
}

fn parts(c: &Candidate, q: &Query) -> Parts {
    let relevance = blend(relative(c.bm25, q.best_bm25), c.semantic);
    let domain = match (q.domain, c.domain) {
        (Some(a), Some(b)) if a == b => 1.0,
        (Some(_), None) | (None, _) => 0.5,
        _ => 0.0,
    };
    let context = if q.tag_words == 0 { domain } else { 0.6 * domain + 0.4 * f64::from(c.tags_matched) / f64::from(q.tag_words) };
    let effectiveness = if c.times_applied > 0 {
        // Laplace-smoothed: one report moves it, many settle it.
        (c.successes_when_applied + 1.0) / (c.times_applied as f64 + 2.0)
    } else {
        0.5
    };
    let effectiveness = (effectiveness + mean_reward_delta(c).unwrap_or(0.0).clamp(-0.25, 0.25)).clamp(0.0, 1.0);
    let age_days = (q.now_ms.saturating_sub(c.last_seen_ms) / 1000).max(0) as f64 / 86_400.0;
    let recency = 0.5f64.powf(age_days / RECENCY_HALF_LIFE_DAYS);
    let success = wilson_lower(c.success_rate, c.sample_size);
    Parts { relevance, context, effectiveness, recency, success, semantic: c.semantic.map(f64::from) }
}

fn total(x: &Parts) -> f64 {
    let [r, c, e, n, s] = WEIGHTS.map(|w| w.1);
    r * x.relevance + c * x.context + e * x.effectiveness + n * x.recency + s * x.success
}

fn domain_name(q: &Query, i: u32) -> &str {
    q.domains.get(i as usize).map(String::as_str).unwrap_or("")
}

fn reasons(c: &Candidate, x: &Parts, q: &Query) -> Vec<String> {
    let mut r = Vec::new();
    match x.semantic {
        Some(s) => {
            r.push(format!("relevance {:.0}% from words and meaning", x.relevance * 100.0));
            if s >= 0.3 {
                r.push(format!("similar in meaning to the task (cosine {s:.2})"));
            }
        }
        None if x.relevance > 0.0 => r.push(format!("matches the task's words ({:.0}% of the best match)", x.relevance * 100.0)),
        None => {}
    }
    match (q.domain, c.domain) {
        (Some(a), Some(b)) if a == b => r.push(format!("from the same domain ({})", domain_name(q, a))),
        (Some(_), Some(b)) => r.push(format!("from another domain ({})", domain_name(q, b))),
        _ => {}
    }
    r.push(format!(
        "{:.0}% success over {} observation{}",
        c.success_rate * 100.0,
        c.sample_size,
        if c.sample_size == 1 { "" } else { "s" }
    ));
    if c.times_applied > 0 {
        r.push(format!(
            "applied {} time(s), {:.0}% successful when applied",
            c.times_applied,
            c.successes_when_applied / c.times_applied as f64 * 100.0
        ));
    }
    if let Some(d) = mean_reward_delta(c) {
        r.push(format!("reward {d:+.2} against comparable episodes when applied"));
    }
    r.push(format!("last seen {}", date::ymd(c.last_seen_ms)));
    r
}

/// Each group's `limit` best candidates scoring at least `min_score`,
/// best first (equal scores: the smaller id first). Candidates naming a
/// group at or past `groups` are left out.
pub fn rank(q: &Query, candidates: &[Candidate]) -> Vec<Vec<Ranked>> {
    let groups = q.groups.min(MAX_GROUPS) as usize;
    // Only the score, id and index of each candidate are kept; the parts
    // and reasons are worked out again for the few that make a group.
    let mut scored: Vec<Vec<(f64, Uuid, u32)>> = (0..groups).map(|_| Vec::new()).collect();
    if let [only] = scored.as_mut_slice() {
        only.reserve(candidates.len());
    }
    for (c, index) in candidates.iter().zip(0u32..) {
        let Some(group) = scored.get_mut(c.group as usize) else { continue };
        let score = total(&parts(c, q));
        if score >= q.min_score {
            group.push((score, c.id, index));
        }
    }
    scored
        .into_iter()
        .map(|mut g| {
            let order = |a: &(f64, Uuid, u32), b: &(f64, Uuid, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            let limit = q.limit as usize;
            if g.len() > limit && limit > 0 {
                // Ids are unique, so the order is total: selecting first
                // gives the same best `limit` as sorting everything.
                g.select_nth_unstable_by(limit - 1, order);
            }
            g.truncate(limit);
            g.sort_by(order);
            g.into_iter()
                .filter_map(|(score, _, index)| {
                    let c = candidates.get(index as usize)?;
                    let parts = parts(c, q);
                    Some(Ranked { index, score, parts, reasons: reasons(c, &parts, q) })
                })
                .collect()
        })
        .collect()
}
