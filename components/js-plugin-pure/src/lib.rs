//! The template of a plugin whose policy grants no tools: world
//! `memory-mcp:tool-call/pure-plugin`, which imports no tool interface at
//! all. `memory-mcp plugin build` runs `initialize` with the script on
//! stdin and snapshots the result. `tools.<server>.<tool>()` still exists
//! in the script, and every call throws a `SecurityViolation`.

wit_bindgen::generate!({
    path: "../../wit/tool-call",
    world: "pure-plugin",
});

use exports::memory_mcp::tool_call::plugin::{Guest as Plugin, PluginInfo, RunOutcome};
use memory_mcp::tool_call::runner::JsError;

struct Component;

impl Guest for Component {
    fn initialize() {
        js_engine::plugin::init(no_tools);
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
        match js_engine::plugin::call(no_tools, &input_json) {
            js_engine::Outcome::Success(json) => RunOutcome::Success(json),
            js_engine::Outcome::SyntaxError(x) => RunOutcome::SyntaxError(e(x)),
            js_engine::Outcome::RuntimeError(x) => RunOutcome::RuntimeError(e(x)),
        }
    }
}

fn no_tools(server: &str, name: &str, _args: &str) -> Result<String, (String, String)> {
    Err((
        js_engine::engine::SECURITY_VIOLATION.to_string(),
        format!("`{server}.{name}`: this plugin's policy grants no tool calls"),
    ))
}

export!(Component);
