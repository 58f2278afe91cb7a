//! The agent JavaScript runtime: QuickJS (through Javy) as a WebAssembly
//! component implementing `memory-mcp:tool-call/agent-runtime`.
//!
//! The host calls `initialize` once ahead of time and snapshots the
//! instance, so the QuickJS runtime, its intrinsics, `console` and the
//! `tools` proxy are already built when `run` is called on a fresh instance.
//!
//! Source is compiled here, inside the sandbox. `console.log`/`console.error`
//! write to WASI stdout/stderr, which the host captures and caps. Tool calls
//! go through the imported `tools` interface, which the host polices.

wit_bindgen::generate!({
    path: "../../wit/tool-call",
    world: "agent-runtime",
});

use exports::memory_mcp::tool_call::runner::{Guest as Runner, JsError, RunOutcome, RunRequest};

struct Component;

impl Guest for Component {
    fn initialize() {
        js_engine::engine::init(call_tool_import);
    }
}

impl Runner for Component {
    fn run(request: RunRequest) -> RunOutcome {
        outcome(js_engine::engine::run(call_tool_import, &request.source, &request.context_json))
    }
}

/// The engine's outcome as this world's type.
fn outcome(o: js_engine::Outcome) -> RunOutcome {
    let e = |e: js_engine::JsError| JsError { message: e.message, line: e.line, column: e.column, stack: e.stack };
    match o {
        js_engine::Outcome::Success(json) => RunOutcome::Success(json),
        js_engine::Outcome::SyntaxError(x) => RunOutcome::SyntaxError(e(x)),
        js_engine::Outcome::RuntimeError(x) => RunOutcome::RuntimeError(e(x)),
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
