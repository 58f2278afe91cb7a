//! The one store-data struct: everything a single execution's `Store` owns.
//! A fresh one is made per call, so nothing leaks between runs.

use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http::HttpGrant;
use super::tools::{ToolsCtx, ToolsView};
use crate::learning::episodes_host::{EpisodesCtx, EpisodesView};

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
    /// Most core instances, memories and tables the store may create.
    pub max_instances: usize,
    pub max_memories: usize,
    pub max_tables: usize,
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

pub struct GuestState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub guard: MemoryGuard,
    pub tools: ToolsCtx,
    /// Read access to stored episodes, when granted.
    pub episodes: EpisodesCtx,
    /// When the execution's wall-clock budget runs out.
    pub deadline: Instant,
    pub http_ctx: WasiHttpCtx,
    /// Where outgoing HTTP may go, when `wasi:http` is linked at all.
    pub http: HttpGrant,
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl GuestState {
    pub fn tools(&mut self) -> ToolsView<'_> {
        ToolsView { ctx: &mut self.tools }
    }

    pub fn episodes(&mut self) -> EpisodesView<'_> {
        EpisodesView { ctx: &mut self.episodes }
    }
}

/// Interrupts the store's guest once its data's deadline passes, yielding
/// to the async runtime every epoch tick until then. Call after the store
/// is made.
pub fn arm_deadline(store: &mut wasmtime::Store<GuestState>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Err(wasmtime::Trap::Interrupt.into())
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
}

impl GuestState {
    /// A store for a fresh execution, with output captured into `stdout`
    /// and `stderr` and nothing else granted by WASI: no environment, no
    /// arguments, no preopened directories, no sockets.
    pub fn new(
        stdout: super::output::CappedPipe,
        stderr: super::output::CappedPipe,
        memory_bytes: u64,
        tools: ToolsCtx,
        deadline: Instant,
    ) -> Self {
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            guard: MemoryGuard::new(memory_bytes),
            tools,
            episodes: EpisodesCtx::none(),
            deadline,
            http_ctx: WasiHttpCtx::new(),
            http: HttpGrant::none(),
        }
    }

    /// A store for one analyzer call: stderr captured (a panic message
    /// explains a trap), no tools, and episode reads only when `episodes`
    /// grants them.
    pub fn for_analyzer(stderr: super::output::CappedPipe, memory_bytes: u64, episodes: EpisodesCtx, deadline: Instant) -> Self {
        let mut data = Self::new(super::output::CappedPipe::new(0), stderr, memory_bytes, deny_all_tools(), deadline);
        data.episodes = episodes;
        data
    }

    /// A store for one embedder call: stderr captured, no tools, no store,
    /// and outgoing HTTP only as `http` allows (it is linked only for
    /// remote embedders).
    pub fn for_embedder(stderr: super::output::CappedPipe, memory_bytes: u64, http: HttpGrant, deadline: Instant) -> Self {
        let mut data = Self::new(super::output::CappedPipe::new(0), stderr, memory_bytes, deny_all_tools(), deadline);
        data.http = http;
        data
    }

    /// A store for the model embedder: stderr captured, no tools, no
    /// network, and `model_dir` preopened read-only as `guest_path`, the
    /// one directory it can see.
    pub fn for_model_embedder(
        stderr: super::output::CappedPipe,
        memory_bytes: u64,
        model_dir: &std::path::Path,
        guest_path: &str,
        deadline: Instant,
    ) -> wasmtime::Result<Self> {
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(super::output::CappedPipe::new(0))
            .stderr(stderr)
            .preopened_dir(model_dir, guest_path, wasmtime_wasi::FsPerms::ReadOnly)?
            .build();
        Ok(Self {
            wasi,
            table: ResourceTable::new(),
            guard: MemoryGuard::new(memory_bytes),
            tools: deny_all_tools(),
            episodes: EpisodesCtx::none(),
            deadline,
            http_ctx: WasiHttpCtx::new(),
            http: HttpGrant::none(),
        })
    }

    /// The store the snapshotter initialises a component in: no output, no
    /// tools, 1 GiB.
    pub fn for_snapshot() -> Self {
        let sink = super::output::CappedPipe::new(0);
        Self::new(
            sink.clone(),
            sink,
            1 << 30,
            deny_all_tools(),
            Instant::now() + std::time::Duration::from_secs(60),
        )
    }
}

/// A wall clock stopped at the Unix epoch, and a monotonic one stopped at 0.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

impl GuestState {
    /// The store a plugin is snapshotted in: `stdin` as its only input,
    /// stderr captured, no tools, and stopped clocks and seeded randomness,
    /// so the same input always gives the same snapshot (the bytes of a
    /// build depend on nothing else). The plugin draws fresh randomness
    /// per call (`Math.random` asks the host each time).
    pub fn for_plugin_build(stdin: Vec<u8>, stderr: super::output::CappedPipe) -> Self {
        use rand10::SeedableRng as _;
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(stdin))
            .stderr(stderr)
            .wall_clock(StoppedClock)
            .monotonic_clock(StoppedClock)
            .secure_random(rand10::rngs::StdRng::seed_from_u64(0))
            .insecure_random(rand10::rngs::StdRng::seed_from_u64(1))
            .insecure_random_seed(2)
            .build();
        let mut data = Self::for_snapshot();
        data.wasi = wasi;
        data
    }
}

/// Tools state for a component that may call none.
pub fn deny_all_tools() -> ToolsCtx {
    use std::sync::Arc;
    ToolsCtx::new(
        uuid::Uuid::nil(),
        Arc::new(super::policy::CompiledPolicy::deny_all()),
        Arc::new(super::tools::NoServers),
        Arc::new(super::tools::RateLimiter::default()),
    )
}

/// A store for one call: its data's memory limit and its deadline (epoch
/// interruption).
pub fn bounded(engine: &wasmtime::Engine, data: GuestState) -> wasmtime::Store<GuestState> {
    let mut store = wasmtime::Store::new(engine, data);
    store.limiter(|d| &mut d.guard);
    arm_deadline(&mut store);
    store
}

/// A store for one metered call: its data's memory limit, its deadline
/// (epoch interruption) and `fuel`.
pub fn metered(engine: &wasmtime::Engine, data: GuestState, fuel: u64) -> wasmtime::Store<GuestState> {
    let mut store = bounded(engine, data);
    // Fuel is set before anything runs, so it cannot fail.
    let _ = store.set_fuel(fuel);
    store
}

/// Why a metered call ended in an error, in the caller's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    OutOfFuel,
    Timeout,
    Memory,
    /// A denied import: the line naming the capability.
    Denied(String),
    /// Any other trap: what trapped, and what the guest said on stderr.
    Trap(String),
}

/// Classifies `err` from a call in `store`, whose stderr is `stderr`.
pub fn why_stopped(err: &wasmtime::Error, store: &wasmtime::Store<GuestState>, stderr: &super::output::CappedPipe) -> Stop {
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    if trap == Some(wasmtime::Trap::OutOfFuel) {
        return Stop::OutOfFuel;
    }
    if trap == Some(wasmtime::Trap::Interrupt) || Instant::now() >= store.data().deadline {
        return Stop::Timeout;
    }
    if store.data().guard.memory_denied {
        return Stop::Memory;
    }
    if let Some(denied) = super::capabilities::DeniedImport::in_error(err) {
        return Stop::Denied(denied.to_string());
    }
    let text = format!("{err:#}");
    // The trap itself, not the wasm backtrace wasmtime attaches.
    let what = match trap {
        Some(t) => t.to_string(),
        None => text.lines().next().unwrap_or_default().to_string(),
    };
    let said = stderr.text();
    let said: String = said.lines().filter(|l| !l.starts_with("note:")).collect::<Vec<_>>().join(" ");
    Stop::Trap(if said.trim().is_empty() { what } else { format!("{what}; stderr: {}", said.trim()) })
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
