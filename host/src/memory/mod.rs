//! Episodic memory: episodes with ordered steps and outcomes, stored in
//! fjall, searchable by words, with the reward and reflection the episode
//! analysis component gives on completion (the store computes neither).

mod build;
pub(crate) mod completion;
mod coverage;
mod documents;
pub(crate) mod heap;
pub(crate) mod keys;
mod lock;
pub(crate) mod model;
mod open;
mod query;
mod reads;
mod store_types;
mod episode_store;
pub(crate) mod summaries;
pub(crate) mod text;

pub use coverage::Build as IndexBuild;
pub use documents::header_text;
pub use episode_store::{EpisodeStore, NewEpisode, NewStep, StoreError, StoreOptions};
pub use heap::release_free_memory;
pub use keys::{EPISODE_ITEM, PATTERN_ITEM, item_key};
pub use lock::DataDirLock;
pub use model::{Outcome, OutcomeType, StepResult, StepStatus, TaskContext, TaskType, parse_id};
pub use query::{Hit, Query, SortBy, run as run_query};
