//! TypeScript for code mode: the `ts-strip` component (swc's type
//! stripper) turns agent TypeScript into JavaScript inside the sandbox,
//! under the execution's own deadline and memory limit. The host only
//! runs it; it never parses agent code itself.

use std::time::Instant;

use anyhow::{Result, anyhow};
use wasmtime::Engine;
use wasmtime::component::InstancePre;

use super::artifacts::{ArtifactCache, LoadReport};
use super::capabilities::{self, Grants};
use super::output::CappedPipe;
use super::guest::{Stop, GuestState, bounded, deny_all_tools, why_stopped};
use crate::world::stripper::{Diagnostic, GuestIndices};

/// A loaded stripper: its `InstancePre`, built once.
pub struct TypeStripper {
    pre: InstancePre<GuestState>,
    indices: GuestIndices,
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
    pub async fn load(engine: &Engine, cache: &ArtifactCache, wasm: &[u8]) -> Result<Self> {
        let (component, load) = cache.load(engine, "ts-strip", wasm, None).await?;
        let linker = capabilities::linker(engine, &component, Grants::NONE)
            .map_err(|e| anyhow!("linking the TypeScript stripper: {e}"))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| anyhow!("pre-instantiating the TypeScript stripper: {e}"))?;
        let indices = GuestIndices::new(&pre).map_err(|e| anyhow!("the TypeScript stripper's exports: {e}"))?;
        Ok(Self { pre, indices, load })
    }

    /// Strips `source` in a fresh store limited to `memory_bytes` and
    /// `deadline`.
    pub async fn strip(&self, source: &str, memory_bytes: u64, deadline: Instant) -> Result<String, StripError> {
        let stderr = CappedPipe::new(4096);
        let data = GuestState::new(CappedPipe::new(0), stderr.clone(), memory_bytes, deny_all_tools(), deadline);
        let mut store = bounded(self.pre.engine(), data);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let stripper = self.indices.load(&mut store, &instance)?;
            stripper.call_strip(&mut store, source).await
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, run).await {
            Err(_) => Err(StripError::Timeout),
            Ok(Ok(Ok(js))) => Ok(js),
            Ok(Ok(Err(diagnostics))) => Err(StripError::Syntax(diagnostics)),
            Ok(Err(e)) => Err(match why_stopped(&e, &store, &stderr) {
                Stop::Timeout => StripError::Timeout,
                Stop::Memory => StripError::Memory,
                Stop::OutOfFuel => StripError::Internal("out of fuel".into()),
                Stop::Denied(what) | Stop::Trap(what) => StripError::Internal(what),
            }),
        }
    }
}
