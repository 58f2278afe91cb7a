//! TypeScript for code mode: the `ts-strip` component (swc's type
//! stripper) turns agent TypeScript into JavaScript inside the sandbox,
//! under the execution's own deadline and memory limit. The host only
//! runs it; it never parses agent code itself.

use std::time::Instant;

use anyhow::{Result, anyhow};
use wasmtime::Engine;

use crate::wasm::{ArtifactCache, LoadReport};
use crate::wasm::CappedPipe;
use crate::wasm::{Budget, Grants, GuestOptions, GuestState, Runner, Stop, linker};
use crate::world::stripper::{Diagnostic, GuestIndices};

/// Most stderr kept from a run (a panic message explains a trap).
const STDERR_BYTES: usize = 4096;

/// A loaded stripper: its `InstancePre`, built once.
pub struct TypeStripper {
    runner: Runner<(), GuestIndices>,
    /// How the component was loaded.
    pub load: LoadReport,
}

/// Why stripping did not produce JavaScript.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StripError {
    /// The source is not valid TypeScript.
    #[error("{}", .0.first().map(|d| d.message.as_str()).unwrap_or("syntax error"))]
    Syntax(Vec<Diagnostic>),
    /// The execution's deadline passed while stripping.
    #[error("the time limit passed while compiling the TypeScript")]
    Timeout,
    /// The stripper ran out of the execution's memory.
    #[error("compiling the TypeScript exceeded the memory limit")]
    Memory,
    /// The stripper itself failed (a host or component bug).
    #[error("the TypeScript stripper failed: {0}")]
    Internal(String),
}

impl TypeStripper {
    /// Compiles (or reads from `cache`) and links the stripper in `engine`.
    pub async fn load(engine: &Engine, cache: &ArtifactCache, wasm: &[u8]) -> Result<Self> {
        let (component, load) = cache.load(engine, "ts-strip", wasm, None).await?;
        let linker = linker::linker(engine, &component, Grants::NONE, &[])
            .map_err(|e| anyhow!("linking the TypeScript stripper: {e}"))?;
        let runner = Runner::new(&linker, &component, GuestIndices::new)
            .map_err(|e| anyhow!("the TypeScript stripper: {e}"))?;
        Ok(Self { runner, load })
    }

    /// Strips `source` in a fresh store limited to `memory_bytes` and
    /// `deadline`.
    pub async fn strip(&self, source: &str, memory_bytes: u64, deadline: Instant) -> Result<String, StripError> {
        let stderr = CappedPipe::new(STDERR_BYTES);
        let options = GuestOptions::new(memory_bytes, deadline).stderr(stderr.clone());
        let state = GuestState::new(options, ()).map_err(|e| StripError::Internal(e.to_string()))?;
        let ended = self
            .runner
            .call(state, Budget::default(), None, async |store, instance, indices| {
                indices.load(&mut *store, instance)?.call_strip(&mut *store, source).await
            })
            .await;
        match ended.result {
            Ok(Ok(js)) => Ok(js),
            Ok(Err(diagnostics)) => Err(StripError::Syntax(diagnostics)),
            Err(Stop::Deadline) => Err(StripError::Timeout),
            Err(Stop::Memory) => Err(StripError::Memory),
            Err(stop) => Err(StripError::Internal(stop.with_stderr(&stderr))),
        }
    }
}
