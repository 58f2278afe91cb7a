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

// wit-bindgen's generated bindings and the export glue (the canonical-ABI
// export functions are unsafe by nature), kept in a private module so none
// of it is this crate's API.
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        path: "../../wit/tool-call/0.2.0",
        world: "agent-runtime",
    });

    use exports::memory_mcp::tool_call::runner::{Guest as Runner, RunOutcome, RunRequest};

    js_interpreter::outcome_glue!(exports::memory_mcp::tool_call::runner);
    js_interpreter::tools_glue!();

    struct Component;

    impl Guest for Component {
        fn initialize() {
            js_interpreter::engine::init(call_tool_import);
        }
    }

    impl Runner for Component {
        fn run(request: RunRequest) -> RunOutcome {
            outcome(js_interpreter::engine::run(call_tool_import, &request.source, &request.context_json))
        }
    }

    export!(Component);
}
