//! The template of a plugin whose policy grants tool calls: world
//! `memory-mcp:tool-call/tool-plugin`. `memory-mcp plugin build` runs
//! `initialize` with the script on stdin and snapshots the result, so each
//! built plugin is this component with its bytecode already compiled.
//! Every tool call goes through the imported `tools` interface, which the
//! host polices with the plugin's policy.

// wit-bindgen's generated bindings and the export glue (the canonical-ABI
// export functions are unsafe by nature), kept in a private module so none
// of it is this crate's API.
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        path: "../../wit/tool-call/0.2.0",
        world: "tool-plugin",
    });

    js_interpreter::tools_glue!();
    js_interpreter::plugin_component!(call_tool_import);
}
