//! `query_memory`'s hybrid order: similarity of meaning first, with the
//! word score (relative to the best word match) as a small share.
//!
//! The share was chosen on the development half of the labelled set
//! (`tests/fixtures/minilm/retrieval.json`, `tests/e2e_minilm_quality.rs`,
//! which prints the alternatives): with all-MiniLM-L6-v2, precision@5 on
//! that half rose steadily as the word share fell (0.37 at half and half,
//! 0.49 at 0.3, 0.53 at 0.2, 0.60 at 0.1, 0.61 at 0.05, 0.62 without
//! words), and reciprocal rank fusion (k = 60) reached 0.40, or 0.53 with
//! the word list weighing a quarter. A word
//! match relative to the best one is 1 for the best match whether or not
//! it means anything, so a large share lets word-sharing distractors in.
//! The words keep [`LEXICAL_WEIGHT`]: enough to order near-equal meanings
//! by shared words, and to rank episodes that have no vector yet.

use super::{Uuid, relative};

/// The share of the word score in an episode's hybrid score; the rest is
/// its cosine similarity to the query (negative counts as 0).
pub const LEXICAL_WEIGHT: f64 = 0.05;

/// One episode the host retrieved by words, by meaning or both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: Uuid,
    pub bm25: f32,
    pub semantic: Option<f32>,
}

/// A candidate's place in the order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blended {
    pub index: u32,
    pub score: f64,
    /// The word part, 0..1.
    pub lexical: f64,
}

/// An episode's hybrid score from its word score relative to the best
/// (0..1) and its cosine similarity, when it has a vector; without one
/// the word score stands alone.
pub fn score(lexical: f64, semantic: Option<f32>) -> f64 {
    match semantic {
        Some(s) => LEXICAL_WEIGHT * lexical + (1.0 - LEXICAL_WEIGHT) * f64::from(s.max(0.0)),
        None => lexical,
    }
}

/// The best `limit` candidates, best first. The order is that of the
/// score as the tool reports it (single precision), then the larger id.
pub fn blend_all(best_bm25: f32, limit: usize, candidates: &[Candidate]) -> Vec<Blended> {
    let mut out: Vec<(Blended, Uuid)> = candidates
        .iter()
        .zip(0u32..)
        .map(|(c, index)| {
            let lexical = relative(c.bm25, best_bm25);
            (Blended { index, score: score(lexical, c.semantic), lexical }, c.id)
        })
        .collect();
    out.sort_by(|a, b| (b.0.score as f32).total_cmp(&(a.0.score as f32)).then(b.1.cmp(&a.1)));
    out.truncate(limit);
    out.into_iter().map(|(b, _)| b).collect()
}
