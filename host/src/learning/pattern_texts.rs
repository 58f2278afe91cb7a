//! The pattern store as the embedding service reads it
//! ([`crate::embeddings::PatternTexts`]): ids, and each pattern's search
//! text.

use uuid::Uuid;

use super::PatternStore;
use crate::embeddings::PatternTexts;

impl PatternTexts for PatternStore {
    fn ids(&self) -> Vec<Uuid> {
        PatternStore::ids(self)
    }

    fn search_text(&self, id: &Uuid) -> Option<String> {
        self.get(id).map(|p| p.search_text())
    }
}
