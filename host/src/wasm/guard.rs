//! The memory guard: the resource limiter every guest's store runs under.

use wasmtime::ResourceLimiter;

/// The store's resource limiter: caps the linear memory of all the
/// store's memories together (a component of many core instances, each
/// with its own memory, gets no more than one with a single memory), the
/// table elements of all its tables together, and how many core instances,
/// memories and tables it may create. Remembers whether a growth was
/// refused so a failure can be reported as the memory limit it is.
#[derive(Debug)]
pub struct MemoryGuard {
    /// Most bytes of linear memory, all memories together.
    pub max_memory_bytes: usize,
    /// Most table elements, all tables together.
    pub max_table_elements: usize,
    /// Most core instances the store may create.
    pub max_instances: usize,
    /// Most memories the store may create.
    pub max_memories: usize,
    /// Most tables the store may create.
    pub max_tables: usize,
    /// Whether a memory growth was refused (the call then stopped on the
    /// memory limit, whatever it trapped with).
    pub memory_denied: bool,
    /// The most linear memory the store held at once, all memories together.
    pub peak_memory_bytes: usize,
    /// Linear memory held now, all memories together.
    memory_bytes: usize,
    table_elements: usize,
    /// The last growth allowed, undone if it then fails.
    last_memory_growth: usize,
    last_table_growth: usize,
}

/// Core instances a store may create: a component is a handful of core
/// instances (its module, the canonical ABI shims, WASI adapters).
pub const MAX_INSTANCES: usize = 32;
/// Memories a store may create (every component here has one).
pub const MAX_MEMORIES: usize = 4;
/// Tables a store may create.
pub const MAX_TABLES: usize = 16;

impl MemoryGuard {
    /// A guard allowing `max_memory_bytes` of linear memory in all.
    pub fn new(max_memory_bytes: u64) -> Self {
        Self {
            max_memory_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
            max_table_elements: 1 << 20,
            max_instances: MAX_INSTANCES,
            max_memories: MAX_MEMORIES,
            max_tables: MAX_TABLES,
            memory_denied: false,
            peak_memory_bytes: 0,
            memory_bytes: 0,
            table_elements: 0,
            last_memory_growth: 0,
            last_table_growth: 0,
        }
    }

    /// Linear memory held now, all memories together.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // `current` is 0 when a memory is created, so the sum counts every
        // memory of every instance from its first page.
        let growth = desired.saturating_sub(current);
        let total = self.memory_bytes.saturating_add(growth);
        if total > self.max_memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        self.last_memory_growth = growth;
        self.peak_memory_bytes = self.peak_memory_bytes.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_bytes = self.memory_bytes.saturating_sub(std::mem::take(&mut self.last_memory_growth));
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.table_elements.saturating_add(growth);
        if total > self.max_table_elements {
            return Ok(false);
        }
        self.table_elements = total;
        self.last_table_growth = growth;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_elements = self.table_elements.saturating_sub(std::mem::take(&mut self.last_table_growth));
        Ok(())
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_memories
    }

    fn tables(&self) -> usize {
        self.max_tables
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn memory_is_counted_across_all_memories_of_the_store() {
        let mut g = MemoryGuard::new(32 << 20);
        // Three memories created at 10 MiB each: the fourth 10 MiB is over.
        for _ in 0..3 {
            assert!(g.memory_growing(0, 10 << 20, None).expect("ok"));
        }
        assert!(!g.memory_growing(0, 10 << 20, None).expect("ok"));
        assert!(g.memory_denied);
        // Growing one of them by 2 MiB fits; a failed growth is given back.
        assert!(g.memory_growing(10 << 20, 12 << 20, None).expect("ok"));
        g.memory_grow_failed(wasmtime::Error::msg("os")).expect("ok");
        assert_eq!(g.memory_bytes(), 30 << 20);
        assert_eq!(g.peak_memory_bytes, 32 << 20);
        assert!(g.table_growing(0, 1 << 19, None).expect("ok") && g.table_growing(0, 1 << 19, None).expect("ok"));
        assert!(!g.table_growing(0, 1, None).expect("ok"));
    }
}
