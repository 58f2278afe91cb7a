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

pub mod analysis;
pub mod analyzers;
pub mod convert;
pub mod model;
pub mod patterns;
mod pattern_texts;
pub mod scorer;
pub mod scorer_export;
pub mod tallies;
pub mod episodes_host;
pub mod worker;

pub use analyzers::{Analyzer, AnalyzerSet};
pub use patterns::PatternStore;
pub use worker::{AnalyzersState, Learning};
