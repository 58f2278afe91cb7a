//! The WIT glue the JS components share, as macros expanded in each
//! component crate: every crate's `wit_bindgen::generate!` makes its own
//! Rust types for the same WIT, so the mapping is written once here and
//! instantiated there.

/// Defines `outcome(js_interpreter::Outcome) -> RunOutcome`, where the `runner`
/// types live at the given module path (exported by `agent-runtime`,
/// imported for their types by the plugin worlds).
#[macro_export]
macro_rules! outcome_glue {
    ($($runner:ident)::+) => {
        fn outcome(o: $crate::Outcome) -> $($runner)::+::RunOutcome {
            use $($runner)::+::{JsError, RunOutcome};
            let e = |e: $crate::JsError| JsError { message: e.message, line: e.line, column: e.column, stack: e.stack };
            match o {
                $crate::Outcome::Success(json) => RunOutcome::Success(json),
                $crate::Outcome::SyntaxError(x) => RunOutcome::SyntaxError(e(x)),
                $crate::Outcome::RuntimeError(x) => RunOutcome::RuntimeError(e(x)),
                $crate::Outcome::Denied(reason) => RunOutcome::Denied(reason),
            }
        }
    };
}

/// Defines `call_tool_import`: the imported `tools.call-tool`
/// (`memory-mcp:tool-call@0.2.0`), its errors as [`ToolFailure`]s: a
/// refusal stays typed, the rest become the JS error names scripts see.
///
/// [`ToolFailure`]: crate::ToolFailure
#[macro_export]
macro_rules! tools_glue {
    () => {
        fn call_tool_import(server: &str, name: &str, args: &str) -> Result<String, $crate::ToolFailure> {
            use memory_mcp::tool_call::tools::{ToolError, call_tool};
            use $crate::ToolFailure::{Denied, Thrown};
            call_tool(server, name, args).map_err(|e| match e {
                ToolError::Denied(m) => Denied(m),
                ToolError::Failed(message) => Thrown { name: "ToolError", message },
                ToolError::Unavailable(message) => Thrown { name: "ToolUnavailable", message },
                ToolError::InvalidArguments(message) => Thrown { name: "TypeError", message },
            })
        }
    };
}

/// A plugin component whose tool calls go to `$call_tool`: `initialize`
/// (run once by the builder, then snapshotted), `info` and `call`.
#[macro_export]
macro_rules! plugin_component {
    ($call_tool:ident) => {
        $crate::outcome_glue!(memory_mcp::tool_call::runner);

        struct Component;

        impl Guest for Component {
            fn initialize() {
                $crate::plugin::init($call_tool);
            }
        }

        impl exports::memory_mcp::tool_call::plugin::Guest for Component {
            fn info() -> exports::memory_mcp::tool_call::plugin::PluginInfo {
                let p = $crate::plugin::info();
                exports::memory_mcp::tool_call::plugin::PluginInfo {
                    name: p.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
                    description: p.as_ref().map(|p| p.description.clone()).unwrap_or_default(),
                    input_schema_json: p.map(|p| p.input_schema_json).unwrap_or_else(|| "{}".into()),
                }
            }

            fn call(input_json: String) -> memory_mcp::tool_call::runner::RunOutcome {
                outcome($crate::plugin::call($call_tool, &input_json))
            }
        }

        export!(Component);
    };
}
