//! `query_memory`'s hybrid order: word relevance (relative to the best
//! word match) blended half and half with similarity of meaning.

use super::{Uuid, blend, relative};

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

/// The best `limit` candidates, best first. The order is that of the
/// score as the tool reports it (single precision), then the larger id.
pub fn blend_all(best_bm25: f32, limit: usize, candidates: &[Candidate]) -> Vec<Blended> {
    let mut out: Vec<(Blended, Uuid)> = candidates
        .iter()
        .zip(0u32..)
        .map(|(c, index)| {
            let lexical = relative(c.bm25, best_bm25);
            (Blended { index, score: blend(lexical, c.semantic), lexical }, c.id)
        })
        .collect();
    out.sort_by(|a, b| (b.0.score as f32).total_cmp(&(a.0.score as f32)).then(b.1.cmp(&a.1)));
    out.truncate(limit);
    out.into_iter().map(|(b, _)| b).collect()
}
