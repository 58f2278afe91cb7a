//! What the embedding service needs of the learned patterns: their ids and
//! the text each is embedded from. The pattern store lives in `learning`,
//! which sits above this module; it implements [`PatternTexts`], and the
//! composition root (`app.rs`) hands it in, so embeddings never names it.

use uuid::Uuid;

/// The learned patterns, as the embedding service sees them.
pub trait PatternTexts: Send + Sync {
    /// Every stored pattern's id.
    fn ids(&self) -> Vec<Uuid>;
    /// The text pattern `id` is embedded from, or `None` when no such
    /// pattern is stored.
    fn search_text(&self, id: &Uuid) -> Option<String>;
}
