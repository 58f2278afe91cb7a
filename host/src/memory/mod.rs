//! Episodic memory: episodes with ordered steps and outcomes, stored in
//! fjall, searchable by words, with reward and reflection on completion.

pub mod build;
pub mod documents;
pub mod heap;
pub mod keys;
pub mod lock;
pub mod model;
pub mod open;
pub mod quality;
pub mod query;
pub mod reads;
pub mod reflection;
pub mod reward;
pub mod episode_store;
pub mod text;

pub use episode_store::{EpisodeStore, StoreError};
