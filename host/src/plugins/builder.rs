//! Building a plugin: the script (TypeScript stripped inside the sandbox
//! first) is compiled to QuickJS bytecode inside the plugin template, and
//! the initialised instance is snapshotted as a new component. Its imports
//! are the template's: `tool-plugin` when the policy grants tools, else
//! `pure-plugin`, which imports no tool interface.
//!
//! The snapshot runs with stopped clocks and seeded randomness, and the
//! manifest holds no time, so the same input gives the same bytes.
//!
//! None of the script runs while it is built: the template compiles it as
//! the body of a function that it cannot close (see
//! `components/js-interpreter/src/engine.rs`, `wrap`), so a script that tries
//! to run code at build time does not compile. What does run (stripping
//! types, compiling) runs under the plugin's own limits (its policy's,
//! within the server's): one deadline for the whole build, its memory
//! limit, and, in a server, one of the sandbox's execution slots. The
//! guest steps yield to the async runtime every epoch tick; the CPU-bound
//! host steps (instrumenting the template, reading the snapshot out,
//! validating) run on blocking threads.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;

use super::manifest::{FileSum, MANIFEST_FORMAT, Manifest, PluginWorld};
use super::policy::PluginPolicy;
use super::{Built, PluginError, inspect, name};
use crate::sandbox::capabilities::deny_all_tools;
use crate::sandbox::typescript::{StripError, TypeStripper};
use crate::sandbox::{Grants, Language, Limits, Sandbox};
use crate::wasm::{ArtifactCache, INIT_FUNC, Instrumented, SnapshotError, snapshot_with};
use crate::wasm::CappedPipe;
use crate::wasm::{GuestOptions, GuestState};

/// The most source a plugin may be built from (the plugins directory
/// reads no more either).
pub const MAX_SOURCE_BYTES: usize = super::file::MAX_SOURCE_BYTES as usize;
/// The largest input schema a plugin may have, as JSON text: every
/// session's `tools/list` carries it.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The longest description a plugin may have (it is in `tools/list` too).
pub const MAX_DESCRIPTION_BYTES: usize = 8 * 1024;

/// The marker the template writes before a compile error (see
/// `components/js-interpreter/src/plugin.rs`).
const BUILD_ERROR_PREFIX: &str = "memory-mcp-plugin-build-error: ";

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The plugin's name, which becomes its directory and tool name.
    pub name: String,
    /// What the tool does, for agents (must not be empty).
    pub description: String,
    /// The script: the body of a function that gets `args` and returns the
    /// tool's result.
    pub source: String,
    /// Whether `source` is TypeScript, stripped before compiling.
    pub language: Language,
    /// JSON Schema of the arguments; `{"type": "object"}` when not given.
    pub input_schema: Option<Value>,
    /// What the plugin may call and its limits (within the server's policy).
    pub policy: PluginPolicy,
}

/// The steps of a build, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Checking the name, the input schema and the policy.
    Checking,
    /// Stripping TypeScript types in the sandbox (TypeScript only).
    StrippingTypes,
    /// Snapshotting the compiled script into the template component.
    Compiling,
    /// Validating the new component (it must load and link).
    Validating,
}

impl Stage {
    /// The number of stages, for a progress bar's length.
    pub const COUNT: u64 = 4;

    /// What the stage does, for a progress line.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Checking => "checking name, schema and policy",
            Stage::StrippingTypes => "stripping TypeScript types",
            Stage::Compiling => "compiling to QuickJS bytecode (snapshot)",
            Stage::Validating => "validating the component",
        }
    }
}

/// Builds plugins with the given engine, templates and artifact cache.
pub struct Builder<'a> {
    /// The engine the validated component is compiled with.
    pub engine: &'a Engine,
    /// Where the prepared templates and the new component are cached.
    pub cache: &'a ArtifactCache,
    /// The `tool-plugin` template (a plugin that may call tools).
    pub tool_template: &'static [u8],
    /// The `pure-plugin` template (a plugin that calls no tools).
    pub pure_template: &'static [u8],
    /// The server's limits; a build runs under the plugin's own, its
    /// policy's within these.
    pub limits: Limits,
    /// The server whose execution slots a build takes one of, and whose
    /// TypeScript stripper it uses; `None` for the CLI.
    pub sandbox: Option<&'a Sandbox>,
}

impl Builder<'_> {
    /// The embedded templates, for a build outside a server (the CLI).
    pub fn embedded<'a>(engine: &'a Engine, cache: &'a ArtifactCache, limits: Limits) -> Builder<'a> {
        Builder {
            engine,
            cache,
            tool_template: crate::components::JS_PLUGIN,
            pure_template: crate::components::JS_PLUGIN_PURE,
            limits,
            sandbox: None,
        }
    }

    /// The embedded templates, building within `sandbox`: its engine,
    /// cache, limits and execution slots.
    pub fn in_sandbox(sandbox: &Sandbox) -> Builder<'_> {
        Builder { sandbox: Some(sandbox), ..Builder::embedded(sandbox.engine(), sandbox.cache(), *sandbox.limits()) }
    }

    /// Prepares both templates for snapshotting (instrumented and compiled,
    /// once per cache), so that the first build does not wait for it.
    pub async fn warm(&self) -> Result<(), PluginError> {
        self.template(PluginWorld::ToolPlugin).await?;
        self.template(PluginWorld::PurePlugin).await?;
        Ok(())
    }

    async fn template(&self, world: PluginWorld) -> Result<Arc<Instrumented>, PluginError> {
        let (name, wasm) = match world {
            PluginWorld::ToolPlugin => ("js-plugin", self.tool_template),
            PluginWorld::PurePlugin => ("js-plugin-pure", self.pure_template),
        };
        self.cache
            .instrumented(self.engine, name, wasm)
            .await
            .map_err(|e| PluginError::Internal(format!("preparing the {name} template: {e:#}")))
    }

    /// The limits a build of `policy` runs under: the plugin's own.
    pub fn limits_for(&self, policy: &PluginPolicy) -> Limits {
        policy.limits(&self.limits)
    }

    /// Builds `req` into its files (nothing is written), reporting each
    /// step to `progress`. The whole build ends by `deadline` (a caller
    /// passes the start of its call plus [`Builder::limits_for`]'s
    /// timeout) and runs within the plugin's memory limit.
    pub async fn build(&self, req: BuildRequest, deadline: Instant, progress: &(dyn Fn(Stage) + Sync)) -> Result<Built, PluginError> {
        self.build_cancellable(req, deadline, progress, &CancellationToken::new()).await
    }

    /// [`Builder::build`], ended early (with [`PluginError::Cancelled`]) by
    /// `cancel`: a wait for a slot ends at once, and a compile in progress
    /// is dropped at its next epoch yield. Nothing is written either way;
    /// a caller that writes checks `cancel` once more before it does.
    pub async fn build_cancellable(
        &self,
        req: BuildRequest,
        deadline: Instant,
        progress: &(dyn Fn(Stage) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Built, PluginError> {
        let timeout_ms = self.limits_for(&req.policy).timeout.as_millis();
        tokio::select! {
            built = tokio::time::timeout_at(deadline.into(), self.build_inner(req, deadline, progress, cancel)) => match built {
                Ok(built) => built,
                Err(_) => Err(PluginError::Limit(format!("the build did not finish within the plugin's time limit ({timeout_ms} ms)"))),
            },
            () = cancel.cancelled() => Err(PluginError::Cancelled),
        }
    }

    async fn build_inner(
        &self,
        req: BuildRequest,
        deadline: Instant,
        progress: &(dyn Fn(Stage) + Sync),
        cancel: &CancellationToken,
    ) -> Result<Built, PluginError> {
        progress(Stage::Checking);
        name::validate(&req.name)?;
        if req.description.trim().is_empty() {
            return Err(PluginError::Input("the description must not be empty: it is what agents read".into()));
        }
        if req.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(PluginError::Input(format!(
                "the description is {} bytes; the limit is {MAX_DESCRIPTION_BYTES}",
                req.description.len()
            )));
        }
        if req.source.len() > MAX_SOURCE_BYTES {
            return Err(PluginError::Input(format!(
                "the source is {} bytes; the limit is {MAX_SOURCE_BYTES}",
                req.source.len()
            )));
        }
        let input_schema = req.input_schema.clone().unwrap_or_else(|| serde_json::json!({"type": "object"}));
        check_schema(&input_schema)?;
        req.policy.check()?;
        let limits = self.limits_for(&req.policy);

        // One of the server's execution slots for the rest of the build.
        let _permit = match self.sandbox {
            Some(sandbox) => Some(
                sandbox.admit(cancel).await.map_err(|refused| match refused {
                    crate::sandbox::Refused::Cancelled => PluginError::Cancelled,
                    refused => PluginError::Input(refused.to_string()),
                })?,
            ),
            None => None,
        };

        let js = match req.language {
            Language::JavaScript => req.source.clone(),
            Language::TypeScript => {
                progress(Stage::StrippingTypes);
                self.strip(&req.source, limits.memory_bytes, deadline).await?
            }
        };

        progress(Stage::Compiling);
        let world = if req.policy.grants_tools() { PluginWorld::ToolPlugin } else { PluginWorld::PurePlugin };
        let template = self.template(world).await?;
        let payload = serde_json::json!({
            "name": req.name,
            "description": req.description,
            "input_schema_json": input_schema.to_string(),
            "source": js,
        });
        let stderr = CappedPipe::new(64 * 1024);
        // Stopped clocks and seeded randomness: the snapshot's bytes depend
        // on the payload alone.
        let options = GuestOptions::new(limits.memory_bytes, deadline)
            .stdin(payload.to_string().into_bytes())
            .stderr(stderr.clone())
            .deterministic();
        let state = GuestState::new(options, deny_all_tools()).map_err(|e| PluginError::Internal(e.to_string()))?;
        let grants = match world {
            PluginWorld::ToolPlugin => Grants::TOOLS,
            PluginWorld::PurePlugin => Grants::NONE,
        };
        let wasm = snapshot_with(self.engine, &template, INIT_FUNC, state, grants.interfaces())
            .await
            .map_err(|e| snapshot_error(&stderr.text(), e, &limits))?;

        progress(Stage::Validating);
        let wasm = tokio::task::spawn_blocking(move || inspect::validate(&wasm).map(|()| wasm))
            .await
            .map_err(|e| PluginError::Internal(format!("validation task: {e}")))??;

        let ext = match req.language {
            Language::JavaScript => "js",
            Language::TypeScript => "ts",
        };
        let policy_toml = req.policy.to_toml();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            name: req.name.clone(),
            description: req.description,
            input_schema,
            language: req.language,
            world,
            wasm: FileSum::of(format!("{}.wasm", req.name), &wasm),
            policy: FileSum::of(format!("{}.policy.toml", req.name), policy_toml.as_bytes()),
            source: FileSum::of(format!("{}.{ext}", req.name), req.source.as_bytes()),
            built_by: env!("CARGO_PKG_VERSION").to_string(),
            saved_by: None,
        };
        Ok(Built { manifest, wasm, policy_toml, source: req.source })
    }

    async fn strip(&self, source: &str, memory_bytes: u64, deadline: Instant) -> Result<String, PluginError> {
        let stripper = match self.sandbox {
            Some(sandbox) => sandbox.typescript().await.map_err(|e| PluginError::Internal(format!("loading the TypeScript stripper: {e}")))?,
            None => Arc::new(
                TypeStripper::load(self.engine, self.cache, crate::components::TS_STRIP)
                    .await
                    .map_err(|e| PluginError::Internal(format!("loading the TypeScript stripper: {e:#}")))?,
            ),
        };
        stripper.strip(source, memory_bytes, deadline).await.map_err(|e| match e {
            StripError::Syntax(d) => {
                let first = d.first();
                PluginError::Compile {
                    message: format!("SyntaxError: {}", first.map(|d| d.message.as_str()).unwrap_or("invalid TypeScript")),
                    line: first.map(|d| d.line),
                    column: first.map(|d| d.column),
                }
            }
            StripError::Timeout => PluginError::Limit("stripping the TypeScript did not finish within the plugin's time limit".into()),
            StripError::Memory => PluginError::Limit("stripping the TypeScript exceeded the plugin's memory limit".into()),
            other => PluginError::Internal(other.to_string()),
        })
    }
}

/// An MCP tool's input schema must describe an object, in at most
/// [`MAX_SCHEMA_BYTES`] of JSON.
pub fn check_schema(schema: &Value) -> Result<(), PluginError> {
    let bytes = schema.to_string().len();
    if bytes > MAX_SCHEMA_BYTES {
        return Err(PluginError::Input(format!("the input schema is {bytes} bytes of JSON; the limit is {MAX_SCHEMA_BYTES}")));
    }
    let ok = schema.as_object().is_some_and(|o| o.get("type").and_then(Value::as_str) == Some("object"));
    if !ok {
        return Err(PluginError::Input(
            "the input schema must be a JSON Schema object with \"type\": \"object\" (MCP tool arguments are an object)".into(),
        ));
    }
    Ok(())
}

/// The template's compile error, when it reported one; else why the
/// snapshot failed.
fn snapshot_error(stderr: &str, err: SnapshotError, limits: &Limits) -> PluginError {
    #[derive(serde::Deserialize)]
    struct JsError {
        message: String,
        line: Option<u32>,
        column: Option<u32>,
    }
    let reported = stderr
        .lines()
        .find_map(|l| l.strip_prefix(BUILD_ERROR_PREFIX))
        .and_then(|json| serde_json::from_str::<JsError>(json).ok());
    if let Some(e) = reported {
        return PluginError::Compile { message: e.message, line: e.line, column: e.column };
    }
    match err {
        SnapshotError::Timeout => PluginError::Limit(format!(
            "compiling the script did not finish within the plugin's time limit ({} ms)",
            limits.timeout.as_millis()
        )),
        SnapshotError::Memory => {
            PluginError::Limit(format!("compiling the script exceeded the plugin's memory limit ({} MiB)", limits.memory_mb()))
        }
        other => PluginError::Internal(format!("snapshotting the plugin: {other}")),
    }
}
