//! The built-in pattern analyzer, a WebAssembly component implementing
//! `memory-mcp:patterns/builtin-analyzer@0.3.0`.
//!
//! - [`extract`] learns tool sequences, decision points, error recoveries
//!   and context patterns, plus condition → action heuristics, from
//!   completed episodes. Keys are stable, so the host merges the same
//!   pattern seen in different batches.
//! - [`stats`] analyses metric time series: descriptive statistics, trend
//!   with a significance test, change points, anomalies, forecasts and
//!   correlations, with distributions from `statrs`.
//! - [`judge`] computes an episode's reward and reflection on completion;
//!   [`quality`] the quality report and [`series`] the metric time series
//!   over stored episodes. [`recovery`] is the one error → recovery
//!   definition the reflection and the patterns share.
//! - [`tallies`] adds up a learned record's evidence across batches and its
//!   effectiveness across agents' feedback, with the reward delta against
//!   comparable episodes.
//!
//! The logic is plain Rust over [`model`] types; the component bindings
//! (built only for wasm32) map WIT records onto them. So the same code runs
//! natively:
//!
//! ```
//! use pattern_analyzer::{extract::extract, model::*};
//! let step = |tool: &str| Step {
//!     number: 1, tool: tool.into(), action: "run".into(), parameters_json: "{}".into(),
//!     status: StepStatus::Success, message: None, latency_ms: 5,
//! };
//! let episode = Episode {
//!     id: "e1".into(), task_description: "add an endpoint".into(), domain: "web-api".into(),
//!     task_type: TaskType::CodeGeneration, language: Some("rust".into()), framework: None,
//!     complexity: Complexity::Simple, tags: vec![], steps: vec![step("read"), step("write")],
//!     outcome: Some(OutcomeType::Success), reward: Some(1.0),
//! };
//! let analysis = extract(&[episode]);
//! assert_eq!(analysis.patterns[0].tools, ["read", "write"]);
//! ```

pub mod extract;
pub mod judge;
pub mod model;
pub mod quality;
pub mod rank;
pub mod recovery;
pub mod series;
pub mod stats;
pub mod tallies;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI export glue
mod component;
