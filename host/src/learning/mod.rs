//! Learning from episodes: pattern analyzers run as sandboxed components
//! (the built-in one and third-party ones installed in `analyzers/`), a worker that feeds them
//! completed episodes off the acknowledgement path, the store of what they
//! learned, and the call that has the scorer component rank it
//! ([`scorer`]).
//!
//! The host does no analysis: it moves episodes across the component
//! boundary, checks what comes back against the contract, groups equal
//! keys for the tallies component to merge ([`tallies`]), and retrieves
//! candidates for the scorer to rank.

mod analysis;
mod analyzers;
mod convert;
mod episodes_host;
mod model;
mod pattern_texts;
mod patterns;
mod scorer;
mod scorer_export;
mod tallies;
mod worker;

pub use analysis::{CompleteError, complete_episode, nanos, series_rows, summary as episode_summary};
pub use analyzers::{ANALYZER_EXPORT, Analyzer, AnalyzerReport, AnalyzerSet, Failure, Health, Rejected, Source, builtin_metering};
pub use convert::episode_to_wit;
pub use episodes_host::EpisodesCtx;
pub use model::{Effectiveness, Evidence, PatternKind, Provenance, StoredPattern};
pub use patterns::PatternStore;
pub use scorer::{Blended, EpisodeCandidate, Parts, PatternQuery, Ranked, Scored};
pub use tallies::Report as TalliesReport;
pub use worker::{AnalyzersState, BatchError, Learning, WorkerStatus, analyse};
