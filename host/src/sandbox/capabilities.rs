//! What code mode and plugins are granted beyond the WASI base that every
//! component gets ([`crate::wasm::linker`]): the `tools` import, whose
//! every call still passes the tool policy.

use std::sync::Arc;

use wasmtime::component::Linker;

use super::NoServers;
use super::tools::{self, RateLimiter, ToolsCtx, ToolsView};
use crate::wasm::{GuestState, HostInterface};

/// What a code-mode or plugin component is granted beyond the base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// The `memory-mcp:tool-call/tools` import (each call still passes the
    /// tool policy).
    pub tools: bool,
}

impl Grants {
    /// Nothing beyond the always-granted base.
    pub const NONE: Grants = Grants { tools: false };
    /// The `tools` import, as code mode's JS runtime gets it.
    pub const TOOLS: Grants = Grants { tools: true };

    /// The host interfaces these grants link.
    pub fn interfaces(self) -> &'static [HostInterface<ToolsCtx>] {
        if self.tools { &WITH_TOOLS } else { &[] }
    }
}

/// The `tools` interface, reading its state from the guest's host state.
pub const TOOLS_INTERFACE: HostInterface<ToolsCtx> = HostInterface { name: "memory-mcp:tool-call/tools", add: add_tools };

static WITH_TOOLS: [HostInterface<ToolsCtx>; 1] = [TOOLS_INTERFACE];

/// Links both versions of `tools` (the name above is versionless, so
/// both are granted): 0.2.0's, and 0.1.0's for plugins saved against it.
fn add_tools(linker: &mut Linker<GuestState<ToolsCtx>>) -> wasmtime::Result<()> {
    tools::add_to_linker(linker, tools_view)?;
    super::legacy::add_to_linker(linker, tools_view)
}

fn tools_view(state: &mut GuestState<ToolsCtx>) -> ToolsView<'_> {
    ToolsView { ctx: &mut state.host }
}

/// Tools state for a component that may call none.
pub fn deny_all_tools() -> ToolsCtx {
    ToolsCtx::new(
        uuid::Uuid::nil(),
        Arc::new(super::policy::CompiledPolicy::deny_all()),
        Arc::new(NoServers),
        Arc::new(RateLimiter::default()),
    )
}
