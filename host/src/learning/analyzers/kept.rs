//! Kept instances of the built-in scorer: it runs once per ranking query,
//! and a fresh instance per call (store, WASI context, instantiation,
//! teardown) cost more than the ranking itself. The built-in component is
//! this server's own stateless code, so an instance that answered is
//! kept for the next call, each call still under its own deadline, fuel
//! and copy budget, and its memory under the policy's limit.
//!
//! An instance is dropped, never reused, after any failed call, and when
//! its memory has grown past [`KEEP_MEMORY_BYTES`]; at most [`KEEP`] are
//! kept, each holding one of its engine's call slots. Installed
//! components (analyzers and third-party scorers) always get a fresh
//! instance per call, as their contract says.
//!
//! ```text
//! take a kept instance, or make one  →  call (own deadline, fuel, copy budget)
//!   → answered and small: keep it   |   failed or grown: drop it
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::Instance;

use super::{Analyzer, Failure, STDERR_BYTES};
use crate::learning::episodes_host::EpisodesCtx;
use crate::memory::EpisodeStore;
use crate::wasm::CappedPipe;
use crate::wasm::{Budget, GuestOptions, GuestState, Resident};

/// Most instances kept at once.
pub const KEEP: usize = 2;
/// An instance whose linear memory has grown past this is not kept.
pub const KEEP_MEMORY_BYTES: usize = 16 << 20;

/// One kept instance and the stderr it writes to.
struct KeptInstance {
    resident: Resident<EpisodesCtx>,
    stderr: CappedPipe,
}

/// The instances kept between calls (see the module docs).
#[derive(Default)]
pub struct Kept {
    instances: Mutex<Vec<KeptInstance>>,
}

impl Kept {
    fn take(&self) -> Option<KeptInstance> {
        crate::sync::lock(&self.instances).pop()
    }

    fn put(&self, kept: KeptInstance) {
        let mut instances = crate::sync::lock(&self.instances);
        if instances.len() < KEEP {
            instances.push(kept);
        }
    }
}

impl Analyzer {
    /// [`Analyzer::call`] with a kept instance (or a new one, kept after
    /// it answers).
    pub(super) async fn call_kept<T>(
        &self,
        kept: &Kept,
        memory: &Arc<EpisodeStore>,
        f: impl AsyncFnOnce(&mut Store<GuestState<EpisodesCtx>>, &Instance) -> wasmtime::Result<T>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let limits = &self.policy.limits;
        let deadline = started + Duration::from_millis(limits.timeout_ms);
        let budget = Budget { fuel: Some(limits.fuel), copy_bytes: Some(limits.copy_budget()) };
        let mut instance = match kept.take() {
            Some(instance) => instance,
            None => {
                let stderr = CappedPipe::new(STDERR_BYTES);
                let episodes = if self.policy.grants.store { EpisodesCtx::granted(memory.clone()) } else { EpisodesCtx::none() };
                let options = GuestOptions::new(limits.memory_mb << 20, deadline).stderr(stderr.clone());
                let state = GuestState::new(options, episodes).map_err(|e| Failure::Trap(e.to_string()))?;
                let resident = self.runner.resident(state, budget).await.map_err(|stop| self.failure(stop, &stderr))?;
                KeptInstance { resident, stderr }
            }
        };
        let result = instance.resident.call(deadline, budget, f).await.map_err(|stop| self.failure(stop, &instance.stderr));
        let fuel_used = instance.resident.fuel_used(budget);
        if result.is_ok() && instance.resident.state().guard.memory_bytes() <= KEEP_MEMORY_BYTES {
            kept.put(instance);
        }
        let mut h = crate::sync::lock(&self.health);
        h.last_call_ms = started.elapsed().as_secs_f64() * 1000.0;
        h.last_fuel_used = fuel_used.unwrap_or(0);
        result
    }
}
