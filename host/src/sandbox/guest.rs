//! The pattern analyzers' store data, until they run on [`crate::wasm::Runner`]
//! like every other component (transitional: code mode, plugins, the
//! TypeScript stripper and embedders already do).

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::tools::{ToolsCtx, ToolsView};
use crate::wasm::guard::MemoryGuard;
use crate::wasm::http::HttpGrant;
use crate::wasm::output::CappedPipe;
use crate::learning::episodes_host::{EpisodesCtx, EpisodesView};

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
        stdout: CappedPipe,
        stderr: CappedPipe,
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
    pub fn for_analyzer(stderr: CappedPipe, memory_bytes: u64, episodes: EpisodesCtx, deadline: Instant) -> Self {
        let mut data = Self::new(CappedPipe::new(0), stderr, memory_bytes, super::capabilities::deny_all_tools(), deadline);
        data.episodes = episodes;
        data
    }
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
pub fn why_stopped(err: &wasmtime::Error, store: &wasmtime::Store<GuestState>, stderr: &CappedPipe) -> Stop {
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
