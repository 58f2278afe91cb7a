//! One blend of word relevance and meaning, used by `query_memory`,
//! `search_patterns` and `recommend_patterns` alike.

/// The share of vector similarity in a blended relevance.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends() {
        assert_eq!(blend(0.8, None), 0.8);
        assert!((blend(1.0, Some(0.0)) - 0.5).abs() < 1e-9);
        assert!((blend(0.0, Some(-0.3)) - 0.0).abs() < 1e-9);
        assert!((blend(0.5, Some(0.9)) - 0.7).abs() < 1e-6);
    }
}
