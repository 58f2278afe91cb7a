//! The wasmtime embedding every component of this server runs through:
//! code mode's JS runtime, the TypeScript stripper, plugins, pattern
//! analyzers and embedders.
//!
//! One shape for all of them, in the style of `wasmtime serve`: a
//! component is compiled once (or read from the [`artifacts`] cache),
//! linked once under its grants ([`linker`]), and pre-instantiated once
//! with its typed export indices ([`Runner`]); every call then gets a
//! fresh [`wasmtime::Store`] whose data is one [`GuestState`], made from
//! [`GuestOptions`], under a memory limit, a wall-clock deadline and (in a
//! fuel-metered engine) a CPU budget. How a call stopped is a typed
//! [`Stop`], never a matched string.
//!
//! Engines come in one configuration per metering mode ([`engine`]), and
//! one epoch ticker thread drives every engine in the process.

mod artifacts;
mod clock;
mod engine;
mod guard;
mod guest;
mod http;
pub(crate) mod linker;
mod output;
mod runner;
mod stop;
mod ticker;

pub use artifacts::{ArtifactCache, INIT_FUNC, Instrumented, LoadReport, SnapshotError, snapshot_with, write_atomic};
pub use engine::{EngineError, Metering, build as build_engine};
pub use guard::MemoryGuard;
pub use guest::{GuestError, GuestOptions, GuestState};
pub use http::{HttpGrant, Origin};
pub use linker::{DeniedImport, Grants, HostInterface};
pub use output::CappedPipe;
pub use runner::{Budget, Ended, Resident, Runner};
pub use stop::Stop;
