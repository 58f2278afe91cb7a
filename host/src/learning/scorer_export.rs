//! A component's scorer export, of either version: `scorer@0.4.0`, called
//! as it is, or one built against `memory-mcp:patterns/scorer@0.2.0`,
//! adapted here, in one place, onto 0.4.0's: the same candidates, sent as
//! a list of records instead of columns, and answers whose types are
//! 0.2.0's but whose shape is the same.
//!
//! ```text
//! columns (0.4.0) → rows (0.2.0) → the scorer → its answer → 0.4.0 types
//! ```

use wasmtime::Store;
use wasmtime::component::Instance;

use crate::world::scorer as w;
use crate::world::scorer_0_2_0 as v2;

/// A component's scorer export, of either version.
pub enum ScorerExport {
    /// `scorer@0.4.0`: candidates as columns.
    Columns(w::GuestIndices),
    /// `scorer@0.2.0`: candidates as records (adapted below).
    Rows(v2::GuestIndices),
}

impl ScorerExport {
    /// Its `info`.
    pub async fn info<T: Send>(&self, store: &mut Store<T>, instance: &Instance) -> wasmtime::Result<w::ScorerInfo> {
        match self {
            Self::Columns(i) => i.load(&mut *store, instance)?.call_info(&mut *store).await,
            Self::Rows(i) => info_v2(i, store, instance).await,
        }
    }

    /// Its `rank-patterns`.
    pub async fn rank_patterns<T: Send>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
        q: &w::PatternQuery,
        c: &w::PatternCandidates,
    ) -> wasmtime::Result<Result<Vec<Vec<w::Ranked>>, String>> {
        match self {
            Self::Columns(i) => i.load(&mut *store, instance)?.call_rank_patterns(&mut *store, q, c).await,
            Self::Rows(i) => rank_patterns_v2(i, store, instance, q, c).await,
        }
    }

    /// Its `blend-episodes`.
    pub async fn blend_episodes<T: Send>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
        best: f32,
        limit: u32,
        c: &w::EpisodeCandidates,
    ) -> wasmtime::Result<Result<Vec<w::Blended>, String>> {
        match self {
            Self::Columns(i) => i.load(&mut *store, instance)?.call_blend_episodes(&mut *store, best, limit, c).await,
            Self::Rows(i) => blend_episodes_v2(i, store, instance, best, limit, c).await,
        }
    }

    /// Its `order-by-support`.
    pub async fn order_by_support<T: Send>(&self, store: &mut Store<T>, instance: &Instance, r: &[w::Support]) -> wasmtime::Result<Result<Vec<u32>, String>> {
        match self {
            Self::Columns(i) => i.load(&mut *store, instance)?.call_order_by_support(&mut *store, r).await,
            Self::Rows(i) => order_by_support_v2(i, store, instance, r).await,
        }
    }
}

/// A column's marker for a candidate without a domain (see the WIT).
pub const NO_DOMAIN: u32 = u32::MAX;

/// A cosine column's entry as an option: NaN marks none.
fn known(x: f32) -> Option<f32> {
    (!x.is_nan()).then_some(x)
}

/// The pattern candidates as 0.2.0's records.
fn pattern_rows(c: &w::PatternCandidates) -> Vec<v2::PatternCandidate> {
    (0..c.id_high.len())
        .map(|i| v2::PatternCandidate {
            id: (c.id_high[i], c.id_low[i]),
            group: c.group[i],
            bm25: c.bm25[i],
            semantic: known(c.semantic[i]),
            domain: (c.domain[i] != NO_DOMAIN).then_some(c.domain[i]),
            tags_matched: c.tags_matched[i],
            sample_size: c.sample_size[i],
            success_rate: c.success_rate[i],
            times_applied: c.times_applied[i],
            successes_when_applied: c.successes_when_applied[i],
            reward_delta_sum: c.reward_delta_sum[i],
            reward_delta_count: c.reward_delta_count[i],
            last_seen_ms: c.last_seen_ms[i],
        })
        .collect()
}

fn query(q: &w::PatternQuery) -> v2::PatternQuery {
    v2::PatternQuery {
        domains: q.domains.clone(),
        domain: q.domain,
        tag_words: q.tag_words,
        best_bm25: q.best_bm25,
        now_ms: q.now_ms,
        groups: q.groups,
        limit: q.limit,
        min_score: q.min_score,
    }
}

fn ranked(r: v2::Ranked) -> w::Ranked {
    let p = r.parts;
    let parts = w::Parts {
        relevance: p.relevance,
        context: p.context,
        effectiveness: p.effectiveness,
        recency: p.recency,
        success: p.success,
        semantic: p.semantic,
    };
    w::Ranked { index: r.index, score: r.score, parts, reasons: r.reasons }
}

/// Calls a 0.2.0 scorer's `info`.
async fn info_v2<T: Send>(i: &v2::GuestIndices, store: &mut Store<T>, instance: &Instance) -> wasmtime::Result<w::ScorerInfo> {
    let x = i.load(&mut *store, instance)?.call_info(&mut *store).await?;
    let weights = x.weights.into_iter().map(|v| w::Weight { name: v.name, value: v.value }).collect();
    Ok(w::ScorerInfo { name: x.name, version: x.version, description: x.description, weights })
}

/// Calls a 0.2.0 scorer's `rank-patterns`.
async fn rank_patterns_v2<T: Send>(
    i: &v2::GuestIndices,
    store: &mut Store<T>,
    instance: &Instance,
    q: &w::PatternQuery,
    c: &w::PatternCandidates,
) -> wasmtime::Result<Result<Vec<Vec<w::Ranked>>, String>> {
    let out = i.load(&mut *store, instance)?.call_rank_patterns(&mut *store, &query(q), &pattern_rows(c)).await?;
    Ok(out.map(|groups| groups.into_iter().map(|g| g.into_iter().map(ranked).collect()).collect()))
}

/// Calls a 0.2.0 scorer's `blend-episodes`.
async fn blend_episodes_v2<T: Send>(
    i: &v2::GuestIndices,
    store: &mut Store<T>,
    instance: &Instance,
    best: f32,
    limit: u32,
    c: &w::EpisodeCandidates,
) -> wasmtime::Result<Result<Vec<w::Blended>, String>> {
    let rows: Vec<v2::EpisodeCandidate> = (0..c.id_high.len())
        .map(|k| v2::EpisodeCandidate { id: (c.id_high[k], c.id_low[k]), bm25: c.bm25[k], semantic: known(c.semantic[k]) })
        .collect();
    let out = i.load(&mut *store, instance)?.call_blend_episodes(&mut *store, best, limit, &rows).await?;
    Ok(out.map(|bs| bs.into_iter().map(|b| w::Blended { index: b.index, score: b.score, lexical: b.lexical }).collect()))
}

/// Calls a 0.2.0 scorer's `order-by-support`.
async fn order_by_support_v2<T: Send>(
    i: &v2::GuestIndices,
    store: &mut Store<T>,
    instance: &Instance,
    records: &[w::Support],
) -> wasmtime::Result<Result<Vec<u32>, String>> {
    let rows: Vec<v2::Support> =
        records.iter().map(|r| v2::Support { id: r.id, sample_size: r.sample_size, success_rate: r.success_rate }).collect();
    i.load(&mut *store, instance)?.call_order_by_support(&mut *store, &rows).await
}
