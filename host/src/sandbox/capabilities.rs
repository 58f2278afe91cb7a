//! Turning grants into a linker, in one place. A component is linked only
//! against what it is granted; every other import it declares is defined
//! as a trap that reports the missing capability.
//!
//! Always granted: clocks, random, `wasi:io` streams, and the captured
//! stdin (empty), stdout and stderr, plus an empty environment and `exit`.
//! Granted only when asked: the `tools` import (code mode) and the
//! read-only episode `store` (analyzers whose policy says so).
//! Granted only to remote embedders: `wasi:http` outgoing requests, each
//! checked against the one origin the store's [`HttpGrant`] allows.
//! Never granted by default: filesystem, sockets, HTTP. There is no WASI
//! interface for subprocesses at all.
//!
//! [`HttpGrant`]: crate::wasm::http::HttpGrant

use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::clocks::WasiClocks;
use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
use wasmtime_wasi::random::WasiRandom;

use super::guest::GuestState;
use super::tools::{self, NoServers, RateLimiter, ToolsCtx, ToolsView};
use crate::wasm::HostInterface;

/// What a component is granted beyond the always-granted base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// The `memory-mcp:tool-call/tools` import (each call still passes the
    /// tool policy).
    pub tools: bool,
    /// The read-only `memory-mcp:memory/store` import (pattern analyzers
    /// whose policy grants it).
    pub store: bool,
    /// `wasi:http` outgoing requests (remote embedders), to the origin the
    /// store's `HttpGrant` names and nowhere else.
    pub http: bool,
    /// `wasi:filesystem`, limited to what the store's WASI context
    /// preopens (the model embedder: its model directory, read-only).
    pub filesystem: bool,
}

impl Grants {
    /// Nothing beyond the always-granted base.
    pub const NONE: Grants = Grants { tools: false, store: false, http: false, filesystem: false };
    /// The `tools` import, as code mode's JS runtime gets it.
    pub const TOOLS: Grants = Grants { tools: true, store: false, http: false, filesystem: false };

    /// The host interfaces these grants link for code mode and plugins
    /// (only `tools` applies to them).
    pub fn interfaces(self) -> &'static [HostInterface<ToolsCtx>] {
        if self.tools { &WITH_TOOLS } else { &[] }
    }
}

/// The `tools` interface, reading its state from the guest's host state.
pub const TOOLS_INTERFACE: HostInterface<ToolsCtx> = HostInterface { name: TOOLS_INTERFACE_NAME, add: add_tools };

static WITH_TOOLS: [HostInterface<ToolsCtx>; 1] = [TOOLS_INTERFACE];

fn add_tools(linker: &mut Linker<crate::wasm::GuestState<ToolsCtx>>) -> wasmtime::Result<()> {
    tools::add_to_linker(linker, tools_view)
}

fn tools_view(state: &mut crate::wasm::GuestState<ToolsCtx>) -> ToolsView<'_> {
    ToolsView { ctx: &mut state.host }
}

/// Tools state for a component that may call none.
pub fn deny_all_tools() -> ToolsCtx {
    ToolsCtx::new(
        uuid::Uuid::nil(),
        std::sync::Arc::new(super::policy::CompiledPolicy::deny_all()),
        std::sync::Arc::new(NoServers),
        std::sync::Arc::new(RateLimiter::default()),
    )
}

/// What a denied capability traps with: the import it named. Execution
/// results find it by type in the error's chain
/// ([`wasmtime::Error::downcast_ref`]), never by its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("denied import: capability `{0}` is not granted")]
pub struct DeniedImport(pub String);

impl DeniedImport {
    /// The denial in `err`'s chain, if a denied import stopped the call.
    pub fn in_error(err: &wasmtime::Error) -> Option<&DeniedImport> {
        err.downcast_ref::<DeniedImport>()
    }
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

pub fn cli_view(t: &mut GuestState) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
    wasmtime_wasi::cli::WasiCliView::cli(t)
}

fn clocks_view(t: &mut GuestState) -> wasmtime_wasi::clocks::WasiClocksCtxView<'_> {
    wasmtime_wasi::clocks::WasiClocksView::clocks(t)
}

/// Builds the linker for `component` under `grants`.
pub fn linker(engine: &Engine, component: &Component, grants: Grants) -> wasmtime::Result<Linker<GuestState>> {
    let mut l = Linker::<GuestState>::new(engine);
    io::error::add_to_linker::<GuestState, HasIo>(&mut l, |t| &mut t.table)?;
    io::poll::add_to_linker::<GuestState, HasIo>(&mut l, |t| &mut t.table)?;
    io::streams::add_to_linker::<GuestState, HasIo>(&mut l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<GuestState, WasiClocks>(&mut l, clocks_view)?;
    clocks::monotonic_clock::add_to_linker::<GuestState, WasiClocks>(&mut l, clocks_view)?;
    random::random::add_to_linker::<GuestState, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<GuestState, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<GuestState, WasiRandom>(&mut l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::environment::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::stdin::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::stdout::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::stderr::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::terminal_input::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::terminal_output::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<GuestState, WasiCli>(&mut l, cli_view)?;
    let mut granted: Vec<&str> = ALWAYS_GRANTED.to_vec();
    if grants.tools {
        tools::add_to_linker(&mut l, GuestState::tools)?;
        granted.push(TOOLS_INTERFACE_NAME);
    }
    if grants.store {
        crate::learning::episodes_host::add_to_linker(&mut l, GuestState::episodes)?;
        granted.push(STORE_INTERFACE);
    }
    if grants.http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
        granted.extend(HTTP_INTERFACES);
    }
    if grants.filesystem {
        use wasmtime_wasi::filesystem::WasiFilesystem;
        wasmtime_wasi::p2::bindings::filesystem::types::add_to_linker::<GuestState, WasiFilesystem>(&mut l, |t| {
            wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(t)
        })?;
        wasmtime_wasi::p2::bindings::filesystem::preopens::add_to_linker::<GuestState, WasiFilesystem>(&mut l, |t| {
            wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(t)
        })?;
        granted.extend(FILESYSTEM_INTERFACES);
    }
    deny_the_rest(&mut l, engine, component, &granted)?;
    Ok(l)
}

/// The interfaces linked above for every component, by versionless name.
const ALWAYS_GRANTED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

const TOOLS_INTERFACE_NAME: &str = "memory-mcp:tool-call/tools";
const STORE_INTERFACE: &str = "memory-mcp:memory/store";
const HTTP_INTERFACES: [&str; 2] = ["wasi:http/types", "wasi:http/outgoing-handler"];
const FILESYSTEM_INTERFACES: [&str; 2] = ["wasi:filesystem/types", "wasi:filesystem/preopens"];

fn versionless(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// A resource type standing in for one the component may not use.
struct Denied;

/// The host type behind a resource of a granted interface, for the
/// resources other interfaces `use` (streams, errors, pollables).
fn granted_resource(interface: &str, name: &str) -> Option<wasmtime::component::ResourceType> {
    use wasmtime::component::ResourceType;
    use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, IoError};
    Some(match (interface, name) {
        ("wasi:io/streams", "input-stream") => ResourceType::host::<DynInputStream>(),
        ("wasi:io/streams", "output-stream") => ResourceType::host::<DynOutputStream>(),
        ("wasi:io/poll", "pollable") => ResourceType::host::<DynPollable>(),
        ("wasi:io/error", "error") => ResourceType::host::<IoError>(),
        _ => return None,
    })
}

/// Defines every import of `component` outside `granted` as a trap naming
/// the capability. (Wasmtime's `define_unknown_imports_as_traps` matches
/// names exactly, so it would shadow semver-compatible WASI definitions.)
/// Resources a denied interface borrows from a granted one keep their real
/// type; its own resources get an inert one.
fn deny_the_rest(
    l: &mut Linker<GuestState>,
    engine: &Engine,
    component: &Component,
    granted: &[&str],
) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    let imports: Vec<_> = ty.imports(engine).collect();
    // The component's view of each granted resource, and its host type.
    let mut shared: Vec<(ResourceType, ResourceType)> = Vec::new();
    for (name, item) in &imports {
        let base = versionless(name);
        if let ComponentItem::ComponentInstance(inst) = &item.ty
            && granted.contains(&base)
        {
            for (export, item) in inst.exports(engine) {
                if let (ComponentItem::Resource(rt), Some(host)) = (item.ty, granted_resource(base, export)) {
                    shared.push((rt, host));
                }
            }
        }
    }
    for (name, item) in imports {
        if granted.contains(&versionless(name)) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(inst) => {
                let mut li = l.instance(name)?;
                for (export, item) in inst.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => {
                            let what = format!("{name}#{export}");
                            li.func_new(export, move |_, _, _, _| {
                                Err(wasmtime::Error::new(DeniedImport(what.clone())))
                            })?;
                        }
                        ComponentItem::Resource(rt) => {
                            let host = shared
                                .iter()
                                .find(|(seen, _)| *seen == rt)
                                .map(|(_, host)| *host)
                                .unwrap_or_else(ResourceType::host::<Denied>);
                            li.resource(export, host, |_, _| Ok(()))?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let what = name.to_string();
                l.root().func_new(name, move |_, _, _, _| {
                    Err(wasmtime::Error::new(DeniedImport(what.clone())))
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}
