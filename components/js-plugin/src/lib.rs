//! The template of a plugin whose policy grants tool calls: world
//! `memory-mcp:tool-call/tool-plugin`. `memory-mcp plugin build` runs
//! `initialize` with the script on stdin and snapshots the result, so each
//! built plugin is this component with its bytecode already compiled.
//! Every tool call goes through the imported `tools` interface, which the
//! host polices with the plugin's policy.

wit_bindgen::generate!({
    path: "../../wit/tool-call",
    world: "tool-plugin",
});

use exports::memory_mcp::tool_call::plugin::{Guest as Plugin, PluginInfo, RunOutcome};
use memory_mcp::tool_call::runner::JsError;

struct Component;

impl Guest for Component {
    fn initialize() {
        js_engine::plugin::init(call_tool_import);
    }
}

impl Plugin for Component {
    fn info() -> PluginInfo {
        let p = js_engine::plugin::info();
        PluginInfo {
            name: p.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            description: p.as_ref().map(|p| p.description.clone()).unwrap_or_default(),
            input_schema_json: p.map(|p| p.input_schema_json).unwrap_or_else(|| "{}".into()),
        }
    }

    fn call(input_json: String) -> RunOutcome {
        let e = |e: js_engine::JsError| JsError { message: e.message, line: e.line, column: e.column, stack: e.stack };
        match js_engine::plugin::call(call_tool_import, &input_json) {
            js_engine::Outcome::Success(json) => RunOutcome::Success(json),
            js_engine::Outcome::SyntaxError(x) => RunOutcome::SyntaxError(e(x)),
            js_engine::Outcome::RuntimeError(x) => RunOutcome::RuntimeError(e(x)),
        }
    }
}

fn call_tool_import(server: &str, name: &str, args: &str) -> Result<String, (String, String)> {
    use memory_mcp::tool_call::tools::{ToolError, call_tool};
    call_tool(server, name, args).map_err(|e| match e {
        ToolError::Denied(m) => (js_engine::engine::SECURITY_VIOLATION.to_string(), m),
        ToolError::Failed(m) => ("ToolError".to_string(), m),
        ToolError::Unavailable(m) => ("ToolUnavailable".to_string(), m),
        ToolError::InvalidArguments(m) => ("TypeError".to_string(), m),
    })
}

export!(Component);
