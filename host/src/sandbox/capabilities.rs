//! Turning grants into a linker, in one place. A component is linked only
//! against what it is granted; every other import it declares is defined
//! as a trap that reports the missing capability.
//!
//! Always granted: clocks, random, `wasi:io` streams, and the captured
//! stdin (empty), stdout and stderr, plus an empty environment and `exit`.
//! Never granted by default: filesystem, sockets, HTTP. There is no WASI
//! interface for subprocesses at all.

use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::clocks::WasiClocks;
use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::WasiView;

use super::store::StoreData;
use super::tools;

/// What a component is granted beyond the always-granted base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// The `memory-mcp:tool-call/tools` import (each call still passes the
    /// tool policy).
    pub tools: bool,
}

/// The text a denied capability traps with; execution results look for it.
pub const DENIED_IMPORT: &str = "unknown import";

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Builds the linker for `component` under `grants`.
pub fn linker(engine: &Engine, component: &Component, grants: Grants) -> wasmtime::Result<Linker<StoreData>> {
    let mut l = Linker::<StoreData>::new(engine);
    io::error::add_to_linker::<StoreData, HasIo>(&mut l, |t| &mut t.table)?;
    io::poll::add_to_linker::<StoreData, HasIo>(&mut l, |t| &mut t.table)?;
    io::streams::add_to_linker::<StoreData, HasIo>(&mut l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<StoreData, WasiClocks>(&mut l, |t| {
        wasmtime_wasi::clocks::WasiClocksView::clocks(t)
    })?;
    clocks::monotonic_clock::add_to_linker::<StoreData, WasiClocks>(&mut l, |t| {
        wasmtime_wasi::clocks::WasiClocksView::clocks(t)
    })?;
    random::random::add_to_linker::<StoreData, WasiRandom>(&mut l, |t| &mut t.ctx().ctx.random)?;
    random::insecure::add_to_linker::<StoreData, WasiRandom>(&mut l, |t| &mut t.ctx().ctx.random)?;
    random::insecure_seed::add_to_linker::<StoreData, WasiRandom>(&mut l, |t| &mut t.ctx().ctx.random)?;
    let cli_view = |t: &mut StoreData| wasmtime_wasi::cli::WasiCliView::cli(t);
    cli::exit::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::environment::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::stdin::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::stdout::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::stderr::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::terminal_input::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::terminal_output::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<StoreData, WasiCli>(&mut l, cli_view)?;
    if grants.tools {
        tools::add_to_linker(&mut l, StoreData::tools)?;
    }
    // Whatever else the component imports (filesystem, sockets, ...) links
    // to a trap: it instantiates, and any use is refused.
    l.define_unknown_imports_as_traps(component)?;
    Ok(l)
}
