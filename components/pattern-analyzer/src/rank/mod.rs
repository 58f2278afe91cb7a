//! The built-in ranking policy, the implementation of
//! `memory-mcp:patterns/scorer@0.4.0`: the host retrieves candidates and
//! measures their raw features; this module turns them into scores, parts
//! and reasons, and orders them.
//!
//! - [`patterns`]: learned patterns and heuristics for `search_patterns`
//!   and `recommend_patterns`, a weighted blend of relevance, context,
//!   effectiveness, recency and the Wilson bound of their success rate;
//! - [`episodes`]: `query_memory`'s order, meaning first with a small
//!   share of word relevance;
//! - [`support`]: `analyze_patterns`' order by evidence.
//!
//! The types are plain Rust, so the policy also runs natively for tests.

pub mod date;
pub mod episodes;
pub mod patterns;
pub mod support;
#[cfg(test)]
mod tests;

/// A UUID as its (most, least) significant 64-bit halves: comparing the
/// tuples compares the UUIDs.
pub type Uuid = (u64, u64);

/// How much each part of a pattern's score weighs; they sum to 1.
pub const WEIGHTS: [(&str, f64); 5] =
    [("relevance", 0.35), ("context", 0.20), ("effectiveness", 0.20), ("recency", 0.10), ("success", 0.15)];

/// The share of vector similarity in a learned pattern's blended
/// relevance (episodes have their own, [`episodes::LEXICAL_WEIGHT`]).
pub const SEMANTIC_WEIGHT: f64 = 0.5;

/// Relevance from a word score relative to the best (0..1) and, when the
/// item has a vector, its cosine similarity to the query (negative counts
/// as 0). Without a vector the word score stands alone.
pub fn blend(lexical: f64, semantic: Option<f32>) -> f64 {
    match semantic {
        Some(s) => (1.0 - SEMANTIC_WEIGHT) * lexical + SEMANTIC_WEIGHT * f64::from(s.max(0.0)),
        None => lexical,
    }
}

/// A BM25 score relative to the best one (0 when nothing matched).
pub fn relative(bm25: f32, best: f32) -> f64 {
    if best > 0.0 { f64::from(bm25 / best) } else { 0.0 }
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
