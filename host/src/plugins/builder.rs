//! Building a plugin: the script (TypeScript stripped inside the sandbox
//! first) is compiled to QuickJS bytecode inside the plugin template, and
//! the initialised instance is snapshotted as a new component. Its imports
//! are the template's: `tool-plugin` when the policy grants tools, else
//! `pure-plugin`, which imports no tool interface.
//!
//! The snapshot runs with stopped clocks and seeded randomness, and the
//! manifest holds no time, so the same input gives the same bytes.

use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::Engine;

use super::manifest::{FileSum, MANIFEST_FORMAT, Manifest, PluginWorld};
use super::policy::PluginPolicy;
use super::{Built, PluginError, inspect, name};
use crate::sandbox::artifacts::{ArtifactCache, snapshot_in};
use crate::sandbox::capabilities::Grants;
use crate::sandbox::output::CappedPipe;
use crate::sandbox::store::StoreData;
use crate::sandbox::typescript::{StripError, TypeStripper};
use crate::sandbox::{Language, RUNTIME_INIT_FUNC};

/// The most source a plugin may be built from.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// The marker the template writes before a compile error (see
/// `components/js-engine/src/plugin.rs`).
const BUILD_ERROR_PREFIX: &str = "memory-mcp-plugin-build-error: ";

/// Time and memory a build's sandboxed steps may use.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60);
const BUILD_MEMORY: u64 = 512 << 20;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub name: String,
    pub description: String,
    pub source: String,
    pub language: Language,
    /// JSON Schema of the arguments; `{"type": "object"}` when not given.
    pub input_schema: Option<Value>,
    pub policy: PluginPolicy,
}

/// The steps of a build, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Checking,
    StrippingTypes,
    Compiling,
    Validating,
}

impl Stage {
    pub const COUNT: u64 = 4;

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
    pub engine: &'a Engine,
    pub cache: &'a ArtifactCache,
    /// The `tool-plugin` and `pure-plugin` templates.
    pub tool_template: &'a [u8],
    pub pure_template: &'a [u8],
}

impl Builder<'_> {
    /// The embedded templates.
    pub fn embedded<'a>(engine: &'a Engine, cache: &'a ArtifactCache) -> Builder<'a> {
        Builder {
            engine,
            cache,
            tool_template: crate::components::JS_PLUGIN,
            pure_template: crate::components::JS_PLUGIN_PURE,
        }
    }

    /// Builds `req` into its files (nothing is written), reporting each
    /// step to `progress`.
    pub async fn build(&self, req: BuildRequest, progress: &(dyn Fn(Stage) + Sync)) -> Result<Built, PluginError> {
        progress(Stage::Checking);
        name::validate(&req.name)?;
        if req.description.trim().is_empty() {
            return Err(PluginError::Input("the description must not be empty: it is what agents read".into()));
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

        let js = match req.language {
            Language::JavaScript => req.source.clone(),
            Language::TypeScript => {
                progress(Stage::StrippingTypes);
                self.strip(&req.source).await?
            }
        };

        progress(Stage::Compiling);
        let world = if req.policy.grants_tools() { PluginWorld::ToolPlugin } else { PluginWorld::PurePlugin };
        let template = match world {
            PluginWorld::ToolPlugin => self.tool_template,
            PluginWorld::PurePlugin => self.pure_template,
        };
        let payload = serde_json::json!({
            "name": req.name,
            "description": req.description,
            "input_schema_json": input_schema.to_string(),
            "source": js,
        });
        let stderr = CappedPipe::new(64 * 1024);
        let data = StoreData::for_plugin_build(payload.to_string().into_bytes(), stderr.clone());
        let grants = match world {
            PluginWorld::ToolPlugin => Grants::TOOLS,
            PluginWorld::PurePlugin => Grants::NONE,
        };
        let wasm = snapshot_in(self.engine, template, RUNTIME_INIT_FUNC, data, grants)
            .await
            .map_err(|e| compile_error(&stderr.text(), &e))?;

        progress(Stage::Validating);
        inspect::validate(&wasm)?;

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
        };
        Ok(Built { manifest, wasm, policy_toml, source: req.source })
    }

    async fn strip(&self, source: &str) -> Result<String, PluginError> {
        let stripper = TypeStripper::load(self.engine, self.cache, crate::components::TS_STRIP)
            .await
            .map_err(|e| PluginError::Internal(format!("loading the TypeScript stripper: {e:#}")))?;
        stripper.strip(source, BUILD_MEMORY, Instant::now() + BUILD_TIMEOUT).await.map_err(|e| match e {
            StripError::Syntax(d) => {
                let first = d.first();
                PluginError::Compile {
                    message: format!("SyntaxError: {}", first.map(|d| d.message.as_str()).unwrap_or("invalid TypeScript")),
                    line: first.map(|d| d.line),
                    column: first.map(|d| d.column),
                }
            }
            other => PluginError::Internal(other.to_string()),
        })
    }
}

/// An MCP tool's input schema must describe an object.
fn check_schema(schema: &Value) -> Result<(), PluginError> {
    let ok = schema.as_object().is_some_and(|o| o.get("type").and_then(Value::as_str) == Some("object"));
    if !ok {
        return Err(PluginError::Input(
            "the input schema must be a JSON Schema object with \"type\": \"object\" (MCP tool arguments are an object)".into(),
        ));
    }
    Ok(())
}

/// The template's compile error, when it reported one; else the trap.
fn compile_error(stderr: &str, err: &anyhow::Error) -> PluginError {
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
    match reported {
        Some(e) => PluginError::Compile { message: e.message, line: e.line, column: e.column },
        None => PluginError::Internal(format!("snapshotting the plugin: {err:#}")),
    }
}
