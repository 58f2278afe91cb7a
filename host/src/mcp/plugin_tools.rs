//! Plugins over MCP: `save_plugin` (code that ran through
//! `execute_agent_code` becomes a named plugin), `list_plugins`,
//! `remove_plugin`, and the calls of the plugins themselves, which are
//! served as tools of their own.

use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::params::{Parameters, input_error, params_or_return};
use super::core_tools::execution_result;
use super::recent::RECENT_EXECUTIONS;
use super::server::Server;
use crate::plugins::{BuildRequest, Builder, LoadedPlugin, Manifest, PluginLimits, PluginPolicy, Stage};
use crate::principal::Principal;
use crate::sandbox::{Status, ToolPolicy};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SavePluginParams {
    /// The `execution_id` of a successful `execute_agent_code` run by this principal (this session over stdio); its code becomes the plugin.
    pub execution_id: uuid::Uuid,
    /// The plugin's tool name: a lowercase letter, then lowercase letters, digits, `_` or `-` (at most 64).
    pub name: String,
    /// What the tool does and what it returns; agents read this to decide to call it.
    pub description: String,
    /// JSON Schema (`"type": "object"`) of the tool's arguments, which the code reads as `context.input`. Default: any object.
    #[serde(default)]
    pub input_schema: Option<Map<String, Value>>,
    /// `server.tool` patterns the plugin may call. Default: exactly the tools that execution called (from the audit). `[]` grants none.
    #[serde(default)]
    pub allow_tools: Option<Vec<String>>,
    /// Wall-clock limit per call (ms), at most the server's.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Memory limit per call (MiB), at most the server's.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Replace an existing plugin of the same name.
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginNameParams {
    /// The plugin's name, as `list_plugins` shows it.
    pub name: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPluginsParams {}

/// A plugin as `list_plugins` and `save_plugin` show it.
pub fn describe(m: &Manifest, allow: &[String]) -> Value {
    json!({
        "name": m.name,
        "description": m.description,
        "world": m.world.as_str(),
        "language": m.language,
        "allow_tools": allow,
        "input_schema": m.input_schema,
        "wasm_bytes": m.wasm.bytes,
        "wasm_blake3": m.wasm.blake3,
        "policy_blake3": m.policy.blake3,
        "built_by": m.built_by,
        "saved_by": m.saved_by,
    })
}

impl Server {
    /// Plugins are shared by every principal (one tool namespace, served to
    /// all), but an existing plugin may be replaced or removed only by the
    /// principal that saved it, or by the operator (`local`: stdio, or
    /// loopback HTTP without tokens). One the operator installed (no
    /// `saved_by`) only the operator may change.
    fn may_change_plugin(&self, name: &str, principal: &Principal) -> Result<(), String> {
        let path = self.plugins().dir().manifest_path(name);
        if principal.name() == crate::principal::LOCAL || std::fs::symlink_metadata(&path).is_err() {
            return Ok(());
        }
        let saved_by = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|m| m.get("saved_by").and_then(Value::as_str).map(str::to_owned));
        match saved_by {
            Some(owner) if owner == principal.name() => Ok(()),
            Some(owner) => Err(format!(
                "plugin {name:?} was saved by principal `{owner}`; only they or the operator may replace or remove it"
            )),
            None => Err(format!(
                "plugin {name:?} was installed by the operator; only the operator may replace or remove it"
            )),
        }
    }
}

#[tool_router(router = plugin_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Save code that ran successfully through execute_agent_code (by its execution_id) as a plugin: a named MCP tool, compiled ahead of time to a standalone WebAssembly component. The tool's arguments reach the code as `context.input`, exactly as in execute_agent_code. By default it may call only the tools that execution called. Other MCP clients see it after notifications/tools/list_changed."
    )]
    async fn save_plugin(
        &self,
        params: Parameters<SavePluginParams>,
        cancel: tokio_util::sync::CancellationToken,
        extensions: rmcp::model::Extensions,
        peer: rmcp::Peer<rmcp::RoleServer>,
        meta: rmcp::model::RequestMetaObject,
    ) -> Result<CallToolResult, ErrorData> {
        let principal = Principal::of(&extensions);
        let p = params_or_return!(params);
        // Reported: each build stage, then the plugin loading (its compile).
        let progress = super::progress::Progress::new(&peer, &meta, Some((Stage::COUNT + 1) as f64));
        let out = self.save_plugin_reporting(p, cancel, principal, &progress).await;
        progress.finish().await;
        out
    }

    #[tool(description = "List the plugins this server serves as tools (name, description, world, the tools each may call, sizes and checksums), and any refused at load with the reason.")]
    pub(super) async fn list_plugins(&self, params: Parameters<ListPluginsParams>) -> Result<CallToolResult, ErrorData> {
        let _ = params_or_return!(params);
        // As tools/list shows them: loaded, or verified and still compiling.
        let plugins: Vec<Value> = self.plugins().listed(|m, p, _| describe(m, &p.tools.allow));
        let (_, refused) = self.plugins().list();
        Ok(CallToolResult::structured(json!({
            "plugins": plugins,
            "refused": refused,
            "dir": self.plugins().dir().path(),
        })))
    }

    #[tool(description = "Remove a plugin: its tool goes away (clients get notifications/tools/list_changed) and its files are deleted. Only the principal that saved it (or the operator) may remove it.")]
    async fn remove_plugin(
        &self,
        params: Parameters<PluginNameParams>,
        extensions: rmcp::model::Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if let Err(e) = self.may_change_plugin(&p.name, &Principal::of(&extensions)) {
            return Ok(input_error(e));
        }
        if let Err(e) = self.plugins().dir().remove(&p.name) {
            return Ok(input_error(e.to_string()));
        }
        if let Ok(sandbox) = self.sandbox().await {
            self.plugins().sync(&sandbox).await;
        }
        Ok(CallToolResult::structured(json!({"removed": p.name})))
    }
}

impl Server {
    async fn save_plugin_reporting(
        &self,
        p: SavePluginParams,
        cancel: tokio_util::sync::CancellationToken,
        principal: Principal,
        progress: &super::progress::Progress,
    ) -> Result<CallToolResult, ErrorData> {
        let sandbox = match self.sandbox().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(e)),
        };
        if let Err(e) = self.plugins().check_name(&p.name) {
            return Ok(input_error(e.to_string()));
        }
        if !p.replace && self.plugins().dir().manifest_path(&p.name).exists() {
            return Ok(input_error(format!(
                "a plugin named {:?} exists; pass \"replace\": true to replace it, or pick another name",
                p.name
            )));
        }
        if p.replace
            && let Err(e) = self.may_change_plugin(&p.name, &principal)
        {
            return Ok(input_error(e));
        }
        let Some(ran) = self.recent(&principal).get(p.execution_id) else {
            return Ok(input_error(format!(
                "no execution {} in this session (the last {RECENT_EXECUTIONS} executions of principal `{principal}` can be saved)",
                p.execution_id
            )));
        };
        if ran.status != Status::Success {
            return Ok(input_error(format!(
                "execution {} ended with status {}; only code that ran successfully can be saved",
                p.execution_id,
                ran.status.as_str()
            )));
        }
        let allow = match p.allow_tools {
            Some(allow) => allow,
            None => ran.answered.clone(),
        };
        let policy = PluginPolicy {
            tools: ToolPolicy { allow, ..ToolPolicy::default() },
            limits: PluginLimits { timeout_ms: p.timeout_ms, memory_mb: p.memory_mb, max_output_bytes: None },
            ..PluginPolicy::default()
        };
        let request = BuildRequest {
            name: p.name.clone(),
            description: p.description,
            source: ran.code,
            language: ran.language,
            input_schema: p.input_schema.map(Value::Object),
            policy,
        };
        // The build runs under the plugin's own limits and one of the
        // sandbox's execution slots; it answers by the plugin's deadline.
        let builder = Builder::in_sandbox(&sandbox);
        let deadline = std::time::Instant::now() + builder.limits_for(&request.policy).timeout;
        let report = |stage: Stage| progress.report(stage_number(stage), stage.label());
        let mut built = match builder.build_cancellable(request, deadline, &report, &cancel).await {
            Ok(b) => b,
            Err(e) => return Ok(input_error(e.to_string())),
        };
        built.manifest.saved_by = Some(principal.name().to_string());
        // Writing the files is the commit: a call cancelled before it
        // leaves nothing behind.
        if cancel.is_cancelled() {
            return Ok(input_error(crate::plugins::PluginError::Cancelled.to_string()));
        }
        if let Err(e) = self.plugins().dir().write_as(&built, p.replace) {
            return Ok(input_error(format!("writing the plugin: {e}")));
        }
        progress.report((Stage::COUNT + 1) as f64, "loading the plugin (compiling its component)");
        self.plugins().sync(&sandbox).await;
        if let Some(loaded) = self.plugins().get(&p.name).filter(|l| l.manifest == built.manifest) {
            return Ok(CallToolResult::structured(json!({
                "saved": describe(&loaded.manifest, &loaded.policy.tools.allow),
                "dir": self.plugins().dir().path(),
            })));
        }
        let (_, refused) = self.plugins().list();
        let why = refused.iter().find(|r| r.name == p.name).map(|r| r.reason.clone()).unwrap_or_default();
        Ok(input_error(format!("the plugin was written but did not load: {why}")))
    }

    /// One call of a plugin's tool. Its arguments become `context.input`;
    /// the result has the shape of `execute_agent_code`'s, and anything
    /// but success is an `isError` result.
    ///
    /// A plugin listed from its manifest whose component is still
    /// compiling (start-up on a cold cache) is waited for, at most
    /// [`PLUGIN_READY_WAIT`], or until the client cancels.
    pub(crate) async fn call_plugin(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> CallToolResult {
        let ready = async {
            let sandbox = self.sandbox().await?;
            match self.plugins().ready(name, PLUGIN_READY_WAIT).await {
                Some(Ok(plugin)) => Ok((sandbox, plugin)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err(format!("no plugin named {name:?}")),
            }
        };
        let waited = tokio::select! {
            r = tokio::time::timeout(PLUGIN_READY_WAIT, ready) => r,
            () = cancel.cancelled() => return input_error(crate::plugins::PluginError::Cancelled.to_string()),
        };
        let (sandbox, plugin) = match waited {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => return input_error(e),
            Err(_) => return input_error(format!(
                "plugin `{name}` is not ready after {} s (the runtime or its component is still loading); try again shortly",
                PLUGIN_READY_WAIT.as_secs()
            )),
        };
        let plugin: &LoadedPlugin = &plugin;
        let id = uuid::Uuid::now_v7();
        let input = Value::Object(arguments.unwrap_or_default());
        if let Err(why) = check_input(&plugin.manifest.name, &plugin.manifest.input_schema, &input) {
            return input_error(why);
        }
        let result = self.plugins().call(&sandbox, plugin, id, input, cancel).await;
        execution_result(&result, id)
    }
}

/// A build stage's number, 1 to [`Stage::COUNT`].
fn stage_number(stage: Stage) -> f64 {
    match stage {
        Stage::Checking => 1.0,
        Stage::StrippingTypes => 2.0,
        Stage::Compiling => 3.0,
        Stage::Validating => 4.0,
    }
}

/// How long a call waits for its plugin to load (the JS runtime, then the
/// plugin's component, both compiled on a cold artifact cache).
pub const PLUGIN_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Most schema violations one refusal lists.
const MAX_INPUT_ERRORS: usize = 8;

/// Checks a plugin's arguments against the `input_schema` it declared
/// (Draft 2020-12; references to other documents are not fetched). The
/// refusal names each failing path as a JSON pointer.
fn check_input(name: &str, schema: &Value, input: &Value) -> Result<(), String> {
    let validator = jsonschema::draft202012::options()
        .build(schema)
        .map_err(|e| format!("plugin `{name}` declares an input_schema that cannot be used: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(input)
        .take(MAX_INPUT_ERRORS)
        .map(|e| {
            let at = e.instance_path().as_str();
            format!("{}: {e}", if at.is_empty() { "/" } else { at })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(format!("invalid arguments for `{name}` (its input_schema): {}", errors.join("; ")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_input;

    #[test]
    fn arguments_are_checked_against_the_declared_schema_with_the_failing_path() {
        let schema = json!({"type": "object", "properties": {"values": {"type": "array", "items": {"type": "number"}}}, "required": ["values"]});
        assert!(check_input("p", &schema, &json!({"values": [1, 2]})).is_ok());
        let why = check_input("p", &schema, &json!({"values": "nope"})).unwrap_err();
        assert!(why.contains("/values") && why.contains("array"), "{why}");
        let why = check_input("p", &schema, &json!({"values": [1, "x"]})).unwrap_err();
        assert!(why.contains("/values/1"), "{why}");
        let why = check_input("p", &schema, &json!({})).unwrap_err();
        assert!(why.contains("values"), "{why}");
        let remote = json!({"$ref": "https://example.invalid/schema.json"});
        assert!(check_input("p", &remote, &json!({})).is_err(), "remote references are not fetched");
    }
}
