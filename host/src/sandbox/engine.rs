//! The wasmtime engine: Cranelift, async, epoch interruption driven by one
//! ticker thread, and the pooling instance allocator sized for the
//! concurrency limit.

use std::time::Duration;

use anyhow::{Result, anyhow};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of timeouts and of
/// cooperative yields back to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Sizes the engine for at most `max_concurrency` executions of components
/// with at most `max_memory_bytes` of linear memory each.
pub fn build(max_concurrency: usize, max_memory_bytes: u64) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(2 << 20);
    config.async_stack_size(4 << 20);
    // Room for the executions, the snapshotter and other components
    // (analyzers, embedders, plugins) running beside them.
    let slots = (max_concurrency as u32).saturating_mul(2).saturating_add(16);
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
        // Keep a little of each slot's memory resident to speed reuse.
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(64 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| anyhow!("creating the wasmtime engine: {e}"))?;
    start_ticker(&engine);
    Ok(engine)
}

/// The engine pattern analyzers run in: fuel metering (a deterministic CPU
/// budget per batch) on top of the epoch deadline, and on-demand
/// allocation, since analyzer calls are few and each gets its own limits.
pub fn build_metered() -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(true);
    config.max_wasm_stack(2 << 20);
    config.async_stack_size(4 << 20);
    let engine = Engine::new(&config).map_err(|e| anyhow!("creating the metered wasmtime engine: {e}"))?;
    start_ticker(&engine);
    Ok(engine)
}

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch ticker; timeouts rely on the async timer alone");
    }
}
