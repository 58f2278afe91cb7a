//! The one store-data struct: everything a single execution's `Store` owns.
//! A fresh one is made per call, so nothing leaks between runs.

use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http::HttpGrant;
use super::tools::{ToolsCtx, ToolsView};
use crate::learning::store_host::{EpisodesCtx, EpisodesView};

/// Caps linear memory and tables, and remembers whether a growth was refused
/// so a failure can be reported as the memory limit it is.
#[derive(Debug)]
pub struct MemoryGuard {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    pub memory_denied: bool,
    pub peak_memory_bytes: usize,
}

impl MemoryGuard {
    pub fn new(max_memory_bytes: u64) -> Self {
        Self {
            max_memory_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
            max_table_elements: 1 << 20,
            memory_denied: false,
            peak_memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

pub struct StoreData {
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

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreData {
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
pub fn arm_deadline(store: &mut wasmtime::Store<StoreData>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Err(wasmtime::Trap::Interrupt.into())
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
}

impl StoreData {
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

impl StoreData {
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
pub fn bounded(engine: &wasmtime::Engine, data: StoreData) -> wasmtime::Store<StoreData> {
    let mut store = wasmtime::Store::new(engine, data);
    store.limiter(|d| &mut d.guard);
    arm_deadline(&mut store);
    store
}

/// A store for one metered call: its data's memory limit, its deadline
/// (epoch interruption) and `fuel`.
pub fn metered(engine: &wasmtime::Engine, data: StoreData, fuel: u64) -> wasmtime::Store<StoreData> {
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
pub fn why_stopped(err: &wasmtime::Error, store: &wasmtime::Store<StoreData>, stderr: &super::output::CappedPipe) -> Stop {
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
    let text = format!("{err:#}");
    if let Some(line) = text.lines().find(|l| l.contains(super::capabilities::DENIED_IMPORT)) {
        return Stop::Denied(line.trim().to_string());
    }
    // The trap itself, not the wasm backtrace wasmtime attaches.
    let what = match trap {
        Some(t) => t.to_string(),
        None => text.lines().next().unwrap_or_default().to_string(),
    };
    let said = stderr.text();
    let said: String = said.lines().filter(|l| !l.starts_with("note:")).collect::<Vec<_>>().join(" ");
    Stop::Trap(if said.trim().is_empty() { what } else { format!("{what}; stderr: {}", said.trim()) })
}
