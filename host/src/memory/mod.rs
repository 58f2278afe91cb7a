//! Episodic memory: episodes with ordered steps and outcomes, stored in
//! fjall, searchable by words, with the reward and reflection the episode
//! analysis component gives on completion (the store computes neither).

pub mod build;
pub mod completion;
pub mod coverage;
pub mod documents;
pub mod heap;
pub mod keys;
pub mod lock;
pub mod model;
pub mod open;
pub mod query;
pub mod reads;
pub mod store_types;
pub mod episode_store;
pub mod summaries;
pub mod text;

pub use episode_store::{EpisodeStore, StoreError};
