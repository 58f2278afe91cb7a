//! Running plugins: components built by `memory-mcp plugin build` (a
//! snapshot of the `tool-plugin` or `pure-plugin` template with one script
//! compiled in). They run in the sandbox's engine, under the same limits,
//! output capture and tool policy as `execute_agent_code`, with a fresh
//! `Store` per call; their `InstancePre` is built once, at load.
//!
//! A plugin exports `memory-mcp:tool-call/plugin@0.2.0`, or `@0.1.0` if an
//! earlier build saved it: both load, and a 0.1.0 outcome is adapted onto
//! 0.2.0's ([`super::legacy`]). A refused call is a typed outcome, the
//! host's own record of the refusal or the guest's `denied`, never text.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Sandbox;
use super::capabilities::Grants;
use super::legacy;
use super::limits::Limits;
use super::outcome::ExecutionResult;
use super::policy::CompiledPolicy;
use super::tools::ToolsCtx;
use crate::wasm::LoadReport;
use crate::wasm::{Runner, linker};
use crate::world::plugin;
use crate::world::tool_call_0_1_0::plugin as plugin_v1;

/// The plugin export a component has: 0.2.0's, else 0.1.0's.
pub enum PluginExport {
    /// `memory-mcp:tool-call/plugin@0.2.0`.
    V2(plugin::GuestIndices),
    /// `memory-mcp:tool-call/plugin@0.1.0`, from an earlier build.
    V1(plugin_v1::GuestIndices),
}

impl PluginExport {
    /// The newest plugin export `pre`'s component has.
    fn find(pre: &wasmtime::component::InstancePre<crate::wasm::GuestState<ToolsCtx>>) -> wasmtime::Result<Self> {
        match plugin::GuestIndices::new(pre) {
            Ok(v2) => Ok(PluginExport::V2(v2)),
            Err(v2) => plugin_v1::GuestIndices::new(pre).map(PluginExport::V1).map_err(|v1| {
                wasmtime::format_err!(
                    "the component does not export memory-mcp:tool-call/plugin (@0.2.0: {v2}; @0.1.0: {v1})"
                )
            }),
        }
    }

    /// The WIT version of the export.
    pub fn version(&self) -> &'static str {
        match self {
            PluginExport::V2(_) => "0.2.0",
            PluginExport::V1(_) => "0.1.0",
        }
    }
}

/// A plugin component, compiled and linked, ready to instantiate.
pub struct PluginCode {
    runner: Runner<ToolsCtx, PluginExport>,
    /// Whether the `tools` interface is linked.
    pub tools_linked: bool,
    /// How the component was loaded.
    pub load: LoadReport,
}

/// One call of a plugin.
pub struct PluginCall {
    /// Names the call in the tool-call audit.
    pub id: uuid::Uuid,
    /// Becomes `context.input`.
    pub input: Value,
    /// The limits the call runs under.
    pub limits: Limits,
    /// The plugin's policy, within the server's. Rate limits are the
    /// sandbox's, shared with code mode and every other plugin.
    pub policy: Arc<CompiledPolicy>,
    /// Cancelled when the client cancels the call: the guest is stopped
    /// and its slot freed.
    pub cancel: CancellationToken,
}

impl Sandbox {
    /// Compiles (or reads from the artifact cache) and links a plugin
    /// component. The `tools` interface is linked only when `policy`
    /// allows some tool; any other import the component declares beyond
    /// the base WASI set traps as a denied capability.
    pub async fn prepare_plugin(&self, name: &str, wasm: &[u8], policy: &CompiledPolicy) -> Result<PluginCode> {
        let (component, load) = self.cache.load(&self.engine, &format!("plugin-{name}"), wasm, None).await?;
        let tools_linked = policy.allows_any();
        let grants = if tools_linked { Grants::TOOLS } else { Grants::NONE };
        let linker = linker::linker(&self.engine, &component, linker::Grants::NONE, grants.interfaces())
            .map_err(|e| anyhow!("linking: {e}"))?;
        let runner = Runner::new(&linker, &component, PluginExport::find).map_err(|e| anyhow!("{e}"))?;
        Ok(PluginCode { runner, tools_linked, load })
    }

    /// Calls a plugin once. Like [`Sandbox::execute`], every way the guest
    /// can fail is a status, and the call counts in the execution metrics.
    pub async fn call_plugin(&self, code: &PluginCode, call: PluginCall) -> ExecutionResult {
        let admitted = Instant::now();
        let result = self.call_plugin_inner(code, call).await;
        self.metrics.record(result.status(), admitted.elapsed());
        result
    }

    async fn call_plugin_inner(&self, code: &PluginCode, call: PluginCall) -> ExecutionResult {
        let _permit = match self.admit(&call.cancel).await {
            Ok(p) => p,
            Err(refused) => return refused.into_result(),
        };
        let started = Instant::now();
        let input = call.input.to_string();
        let tools = ToolsCtx::new(call.id, call.policy, self.dispatcher.clone(), self.rate.clone());
        let (result, _) = self
            .run_guest(&code.runner, tools, &call.limits, started, &call.cancel, async |store, instance, export| {
                match export {
                    PluginExport::V2(v2) => v2.load(&mut *store, instance)?.call_call(&mut *store, &input).await,
                    PluginExport::V1(v1) => {
                        v1.load(&mut *store, instance)?.call_call(&mut *store, &input).await.map(legacy::outcome)
                    }
                }
            })
            .await;
        result
    }
}

impl PluginCode {
    /// The `tool-call` version the component was built against.
    pub fn version(&self) -> &'static str {
        self.runner.indices().version()
    }
}
