//! Embeddings and semantic search. The embedding logic runs in components
//! behind `memory-mcp:embeddings/embedder@0.2.0` (see [`embedder`]); the
//! host persists settings (among the providers the operator declared:
//! [`providers`]) and vectors, indexes them ([`index`]), embeds
//! completed episodes and learned patterns in the background ([`worker`]),
//! re-embeds into a new space without a gap in search (`job`, throttled by
//! [`throttle`]),
//! and measures similarity for the scorer component, which blends it into
//! ranking (called from the learning module).

pub mod embedder;
mod health;
pub mod index;
mod install;
mod job;
pub mod pattern_texts;
pub mod providers;
mod query_cache;
pub mod service;
pub mod settings;
mod state;
pub mod throttle;
pub mod vectors;
mod worker;

pub use embedder::{EmbedFailure, Embedder, ModelInfo, Space};
pub use pattern_texts::PatternTexts;
pub use providers::{DeclaredProvider, FileEmbeddings, Providers};
pub use service::{Embeddings, QueryVector, RefusedSettings, SemanticHit};
pub use settings::{EmbeddingSettings, ProviderKind};
