//! The template of a plugin whose policy grants no tools: world
//! `memory-mcp:tool-call/pure-plugin`, which imports no tool interface at
//! all. `memory-mcp plugin build` runs `initialize` with the script on
//! stdin and snapshots the result. `tools.<server>.<tool>()` still exists
//! in the script, and every call throws a `SecurityViolation`.

wit_bindgen::generate!({
    path: "../../wit/tool-call/0.1.0",
    world: "pure-plugin",
});

js_interpreter::plugin_component!(no_tools);

fn no_tools(server: &str, name: &str, _args: &str) -> Result<String, (String, String)> {
    Err((
        js_interpreter::engine::SECURITY_VIOLATION.to_string(),
        format!("`{server}.{name}`: this plugin's policy grants no tool calls"),
    ))
}
