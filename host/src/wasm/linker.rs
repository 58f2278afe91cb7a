//! Turning grants into a linker, in one place. A component is linked only
//! against what it is granted; every other import it declares is defined
//! as a trap that raises a [`DeniedImport`] naming the capability.
//!
//! Always granted: clocks, random, `wasi:io` streams, and the captured
//! stdin, stdout and stderr, plus an empty environment and `exit`.
//! Granted when asked ([`Grants`]): `wasi:http` outgoing requests, each
//! checked against the one origin the guest's [`HttpGrant`] allows, and
//! `wasi:filesystem`, limited to what the guest's options preopen.
//! The embedder's own interfaces (code mode's `tools`, an analyzer's
//! episode `store`) are linked as [`HostInterface`]s. There is no WASI
//! interface for subprocesses at all.
//!
//! [`HttpGrant`]: super::http::HttpGrant

use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::clocks::WasiClocks;
use wasmtime_wasi::p2::bindings::{cli, clocks, io, random};
use wasmtime_wasi::random::WasiRandom;

use super::guest::GuestState;

/// The WASI capabilities a component is granted beyond the base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// `wasi:http` outgoing requests (remote embedders), to the origin the
    /// guest's `HttpGrant` names and nowhere else.
    pub http: bool,
    /// `wasi:filesystem`, limited to what the guest's options preopen (the
    /// model embedder: its model directory, read-only).
    pub filesystem: bool,
}

impl Grants {
    /// Nothing beyond the always-granted base.
    pub const NONE: Grants = Grants { http: false, filesystem: false };
}

/// An interface the embedder implements for guests whose state carries
/// `H`: its versionless name (`memory-mcp:tool-call/tools`) and how to
/// add it to a linker.
pub struct HostInterface<H: 'static> {
    /// The interface's name without its version.
    pub name: &'static str,
    /// Adds the interface's functions to the linker.
    pub add: fn(&mut Linker<GuestState<H>>) -> wasmtime::Result<()>,
}

/// What a denied capability traps with: the import it named. A stopped
/// call finds it by type in the error's chain
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

fn cli_view<H: Send + 'static>(t: &mut GuestState<H>) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
    wasmtime_wasi::cli::WasiCliView::cli(t)
}

fn clocks_view<H: Send + 'static>(t: &mut GuestState<H>) -> wasmtime_wasi::clocks::WasiClocksCtxView<'_> {
    wasmtime_wasi::clocks::WasiClocksView::clocks(t)
}

fn random_view<H: Send + 'static>(t: &mut GuestState<H>) -> &mut wasmtime_wasi::random::WasiRandomCtx {
    t.wasi.random()
}

fn filesystem_view<H: Send + 'static>(t: &mut GuestState<H>) -> wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_> {
    wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(t)
}

/// Builds the linker for `component`: the base, what `grants` adds, and
/// `interfaces`; every other import it declares traps as denied.
pub fn linker<H: Send + 'static>(
    engine: &Engine,
    component: &Component,
    grants: Grants,
    interfaces: &[HostInterface<H>],
) -> wasmtime::Result<Linker<GuestState<H>>> {
    type G<H> = GuestState<H>;
    let mut l = Linker::<G<H>>::new(engine);
    io::error::add_to_linker::<G<H>, HasIo>(&mut l, |t| &mut t.table)?;
    io::poll::add_to_linker::<G<H>, HasIo>(&mut l, |t| &mut t.table)?;
    io::streams::add_to_linker::<G<H>, HasIo>(&mut l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<G<H>, WasiClocks>(&mut l, clocks_view)?;
    clocks::monotonic_clock::add_to_linker::<G<H>, WasiClocks>(&mut l, clocks_view)?;
    random::random::add_to_linker::<G<H>, WasiRandom>(&mut l, random_view)?;
    random::insecure::add_to_linker::<G<H>, WasiRandom>(&mut l, random_view)?;
    random::insecure_seed::add_to_linker::<G<H>, WasiRandom>(&mut l, random_view)?;
    cli::exit::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::environment::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::stdin::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::stdout::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::stderr::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::terminal_input::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::terminal_output::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<G<H>, WasiCli>(&mut l, cli_view)?;
    let mut granted: Vec<&str> = ALWAYS_GRANTED.to_vec();
    for interface in interfaces {
        (interface.add)(&mut l)?;
        granted.push(interface.name);
    }
    if grants.http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
        granted.extend(HTTP_INTERFACES);
    }
    if grants.filesystem {
        use wasmtime_wasi::filesystem::WasiFilesystem;
        wasmtime_wasi::p2::bindings::filesystem::types::add_to_linker::<G<H>, WasiFilesystem>(&mut l, filesystem_view)?;
        wasmtime_wasi::p2::bindings::filesystem::preopens::add_to_linker::<G<H>, WasiFilesystem>(&mut l, filesystem_view)?;
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
fn deny_the_rest<T: 'static>(l: &mut Linker<T>, engine: &Engine, component: &Component, granted: &[&str]) -> wasmtime::Result<()> {
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
                            li.func_new(export, move |_, _, _, _| Err(wasmtime::Error::new(DeniedImport(what.clone()))))?;
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
                l.root().func_new(name, move |_, _, _, _| Err(wasmtime::Error::new(DeniedImport(what.clone()))))?;
            }
            _ => {}
        }
    }
    Ok(())
}
