//! Why a guest call stopped without returning: one typed reason, derived
//! from typed values (the trap code, the guest state's memory guard and
//! deadline, a [`DeniedImport`] in the error's chain), never from the text
//! of an error that crossed a boundary.

use std::time::Instant;

use wasmtime::Trap;

use super::guest::GuestState;
use super::linker::DeniedImport;
use super::output::CappedPipe;

/// Why a guest call stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Stop {
    /// The call used up its fuel (fuel-metered engines only).
    #[error("ran out of fuel")]
    OutOfFuel,
    /// The call's wall-clock deadline passed.
    #[error("the deadline passed")]
    Deadline,
    /// A memory growth was refused: the call hit its memory limit.
    #[error("the memory limit was reached")]
    Memory,
    /// The guest called an import it is not granted.
    #[error("{0}")]
    Denied(DeniedImport),
    /// The caller cancelled the call.
    #[error("cancelled")]
    Cancelled,
    /// A result (or an import's argument) was over the store's copy budget
    /// ([`Budget::copy_bytes`](super::Budget::copy_bytes)); refused before
    /// it was copied.
    #[error("too much data was copied between the host and the guest")]
    CopyBudget,
    /// Any other trap or host error.
    #[error("{}", self.what())]
    Trap {
        /// The trap code, when wasmtime raised one.
        trap: Option<Trap>,
        /// The whole error, its chain joined (may include a wasm backtrace).
        detail: String,
    },
}

/// What wasmtime says when a store's hostcall fuel runs out. Its error type
/// is private to wasmtime, so this one text is recognised here, in the
/// one place, and nowhere else.
const COPY_BUDGET_EXHAUSTED: &str = "too much data is being copied between the host and the guest";

impl Stop {
    /// Why the call whose error is `err` stopped, given its state.
    pub fn of<H>(err: &wasmtime::Error, state: &GuestState<H>) -> Stop {
        let trap = err.downcast_ref::<Trap>().copied();
        let detail = format!("{err:#}");
        if trap.is_none() && detail.contains(COPY_BUDGET_EXHAUSTED) {
            return Stop::CopyBudget;
        }
        if trap == Some(Trap::OutOfFuel) {
            return Stop::OutOfFuel;
        }
        if trap == Some(Trap::Interrupt) || Instant::now() >= state.deadline {
            return Stop::Deadline;
        }
        if state.guard.memory_denied {
            return Stop::Memory;
        }
        if let Some(denied) = DeniedImport::in_error(err) {
            return Stop::Denied(denied.clone());
        }
        Stop::Trap { trap, detail }
    }

    /// For a trap: what trapped (the trap code, or the error's first line,
    /// without the wasm backtrace); for the others, their description.
    pub fn what(&self) -> String {
        match self {
            Stop::Trap { trap: Some(t), .. } => t.to_string(),
            Stop::Trap { trap: None, detail } => detail.lines().next().unwrap_or_default().to_string(),
            other => other.to_string(),
        }
    }

    /// [`Stop::what`], followed by what the guest said on `stderr` (a
    /// panic message explains a trap), `note:` lines left out.
    pub fn with_stderr(&self, stderr: &CappedPipe) -> String {
        let what = self.what();
        let said = stderr.text();
        let said: Vec<&str> = said.lines().filter(|l| !l.starts_with("note:")).collect();
        let said = said.join(" ");
        if said.trim().is_empty() { what } else { format!("{what}; stderr: {}", said.trim()) }
    }
}
