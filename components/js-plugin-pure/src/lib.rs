//! The template of a plugin whose policy grants no tools: world
//! `memory-mcp:tool-call/pure-plugin`, which imports no tool interface at
//! all. `memory-mcp plugin build` runs `initialize` with the script on
//! stdin and snapshots the result. `tools.<server>.<tool>()` still exists
//! in the script, and every call throws a `SecurityViolation`; the call's
//! outcome is then `denied` (`memory-mcp:tool-call@0.2.0`).

// wit-bindgen's generated bindings and the export glue (the canonical-ABI
// export functions are unsafe by nature), kept in a private module so none
// of it is this crate's API.
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        path: "../../wit/tool-call/0.2.0",
        world: "pure-plugin",
    });

    js_interpreter::plugin_component!(no_tools);

    fn no_tools(server: &str, name: &str, _args: &str) -> Result<String, js_interpreter::ToolFailure> {
        Err(js_interpreter::ToolFailure::Denied(format!("`{server}.{name}`: this plugin's policy grants no tool calls")))
    }
}
