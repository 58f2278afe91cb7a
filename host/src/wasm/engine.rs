//! Wasmtime engines: one configuration per metering mode. Every engine
//! has Cranelift, async support, epoch interruption driven by the one
//! ticker thread (every millisecond). The epoch-metered engine uses the
//! pooling instance allocator with copy-on-write memory images, so a fresh
//! instance per call costs a slot reset rather than fresh mappings; its
//! embedder (code mode) bounds its own executions, and the pool has room
//! for twice as many. The fuel-metered engine allocates on demand, so any
//! component shape an analyzer policy allows loads; the pooled fuel engine
//! is for components whose shape is known (the built-in pattern analyzer
//! and scorer, called once per query). Calls in either fuel engine take one
//! of [`FUEL_CALLS`] call slots ([`call_slots`]) and wait for one when all
//! are taken.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use wasmtime::{Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};


/// How calls in an engine are metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// Wall clock only (the epoch deadline), with the pooling instance
    /// allocator sized for at most `max_concurrency` calls of components
    /// with at most `max_memory_bytes` of linear memory each: code mode,
    /// the TypeScript stripper and plugins, where instantiation speed
    /// matters.
    Epoch {
        /// Calls that run at once.
        max_concurrency: usize,
        /// The most linear memory one call may have.
        max_memory_bytes: u64,
    },
    /// Fuel (a deterministic CPU budget per call) on top of the epoch
    /// deadline: pattern analyzers, the scorer and embedders, each call
    /// with its own limits. At most [`FUEL_CALLS`] calls hold an instance
    /// at once (more wait for a slot).
    Fuel,
    /// [`Metering::Fuel`] with the pooling instance allocator, sized for
    /// [`FUEL_CALLS`] calls of components with at most `max_memory_bytes`
    /// of linear memory each: components whose shape is known, where a
    /// fresh instance per call must cost little (the built-in analyzer and
    /// scorer, called once per `recommend_patterns`). A component the pool
    /// cannot hold fails to load here, so it goes to a [`Metering::Fuel`]
    /// engine.
    PooledFuel {
        /// The most linear memory one call may have.
        max_memory_bytes: u64,
    },
    /// The epoch deadline only (no fuel: fuel's per-instruction count
    /// costs the most on compute-bound guests), allocating on demand:
    /// the model embedder, whose one long-lived instance does
    /// matrix arithmetic for tens of milliseconds a call. Its CPU limit is
    /// each call's wall-clock deadline; its memory limit is the guest
    /// state's, as everywhere.
    Deadline,
}

/// Calls of a fuel-metered engine that hold an instance at once; further
/// calls wait for one of these slots ([`call_slots`]).
pub const FUEL_CALLS: usize = 16;


/// Fuel-metered engines and their call slots.
static CALL_SLOTS: Mutex<Vec<(EngineWeak, Arc<Semaphore>)>> = Mutex::new(Vec::new());

/// The call slots of `engine` when it is fuel-metered (`None` for an
/// epoch-metered engine, whose embedder bounds its own calls).
pub fn call_slots(engine: &Engine) -> Option<Arc<Semaphore>> {
    crate::sync::lock(&CALL_SLOTS)
        .iter()
        .find(|(weak, _)| weak.upgrade().is_some_and(|e| Engine::same(&e, engine)))
        .map(|(_, slots)| slots.clone())
}

/// The engine could not be made.
#[derive(Debug, thiserror::Error)]
#[error("creating the {mode} wasmtime engine: {message}")]
pub struct EngineError {
    mode: &'static str,
    message: String,
}

/// An engine metered as `metering` says, registered with the epoch ticker.
pub fn build(metering: Metering) -> Result<Engine, EngineError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(2 << 20);
    config.async_stack_size(4 << 20);
    let mode = match metering {
        Metering::Epoch { max_concurrency, max_memory_bytes } => {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(max_concurrency, max_memory_bytes)));
            "pooled"
        }
        Metering::Fuel => {
            config.consume_fuel(true);
            // On-demand allocation: the pooling allocator's fixed shape
            // (one memory per core module, bounded instance sizes) would
            // refuse third-party analyzers that load today, e.g. one with
            // several memories. Call slots still bound the calls at once.
            "metered"
        }
        Metering::PooledFuel { max_memory_bytes } => {
            config.consume_fuel(true);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(FUEL_CALLS, max_memory_bytes)));
            "pooled metered"
        }
        Metering::Deadline => "deadline",
    };
    let engine = Engine::new(&config).map_err(|e| EngineError { mode, message: e.to_string() })?;
    if matches!(metering, Metering::Fuel | Metering::PooledFuel { .. }) {
        let mut slots = crate::sync::lock(&CALL_SLOTS);
        slots.retain(|(weak, _)| weak.upgrade().is_some());
        slots.push((engine.weak(), Arc::new(Semaphore::new(FUEL_CALLS))));
    }
    super::ticker::register(&engine);
    Ok(engine)
}

/// The pooling allocator for `max_concurrency` calls of at most
/// `max_memory_bytes` each.
fn pool(max_concurrency: usize, max_memory_bytes: u64) -> PoolingAllocationConfig {
    // Room for the executions, the snapshotter and other components
    // (the TypeScript stripper, plugins) running beside them.
    let slots = u32::try_from(max_concurrency).unwrap_or(u32::MAX).saturating_mul(2).saturating_add(16);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(4))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(4))
        .total_stacks(slots)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(100_000)
        // Keep a little of each slot's memory resident to speed reuse,
        // resetting only the pages a call dirtied where the kernel can say
        // which (PAGEMAP_SCAN, Linux 6.7+).
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    pool
}
