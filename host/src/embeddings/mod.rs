//! Embeddings and semantic search. The embedding logic runs in components
//! behind `memory-mcp:embeddings/embedder@0.2.0` ([`Embedder`]); the
//! host persists settings (among the providers the operator declared:
//! [`Providers`]) and vectors, indexes them ([`VectorIndex`]), embeds
//! completed episodes and learned patterns in the background (`worker`),
//! re-embeds into a new space without a gap in search (`job`, throttled by
//! `throttle`),
//! and measures similarity for the scorer component, which blends it into
//! ranking (called from the learning module).

mod embedder;
mod health;
mod index;
mod install;
mod job;
mod pattern_texts;
mod providers;
mod query_cache;
mod service;
mod settings;
mod state;
mod throttle;
mod vectors;
mod worker;

pub use embedder::{EmbedFailure, Embedder, ModelInfo, Space, precompile};
pub use index::{ANN_MIN, VectorIndex};
pub use pattern_texts::PatternTexts;
pub use providers::{DeclaredProvider, FileEmbeddings, Providers};
pub use service::{Embeddings, LOAD_WAIT, QueryVector, RefusedSettings, SemanticHit};
pub use settings::{EmbeddingSettings, ProviderKind};
pub use state::Active;
pub use vectors::encode as encode_vector;
