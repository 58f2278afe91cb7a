//! A plugin: one script compiled ahead of time. The host's builder runs
//! [`init`] once, with the plugin's payload on stdin, and snapshots the
//! instance: the QuickJS runtime and the compiled function (its bytecode)
//! are then part of the component, so [`call`] compiles nothing.
//!
//! A script that fails to compile stops the build: [`init`] writes one
//! line, [`BUILD_ERROR_PREFIX`] followed by the [`JsError`] as JSON, to
//! stderr and aborts, and the builder reports that error.

use std::cell::OnceCell;
use std::io::Read as _;

use javy::quickjs::{Function, Persistent};
use serde::{Deserialize, Serialize};

use crate::engine::{self, CallTool};
use crate::errors::plain;
use crate::{JsError, Outcome};

/// Marks the compile error the builder looks for on stderr.
pub const BUILD_ERROR_PREFIX: &str = "memory-mcp-plugin-build-error: ";

/// What the builder writes to stdin during initialisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The plugin's name (its MCP tool name).
    pub name: String,
    /// The tool's description.
    pub description: String,
    /// JSON Schema of the input, as JSON text.
    pub input_schema_json: String,
    /// JavaScript: the body of an async function.
    pub source: String,
}

struct Compiled {
    payload: Payload,
    main: Persistent<Function<'static>>,
}

thread_local! {
    static PLUGIN: OnceCell<Compiled> = const { OnceCell::new() };
}

/// Reads the payload from stdin and compiles it. Without a payload (the
/// bare template) it only builds the runtime; calls then say so.
pub fn init(call_tool: CallTool) {
    if PLUGIN.with(|p| p.get().is_some()) {
        return;
    }
    let mut raw = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut raw);
    if raw.is_empty() {
        engine::with_context(call_tool, |_| ());
        return;
    }
    let payload: Payload = match serde_json::from_slice(&raw) {
        Ok(p) => p,
        Err(e) => fail(&plain(&format!("InternalError: bad plugin payload: {e}"))),
    };
    let compiled = engine::with_context(call_tool, |ctx| {
        engine::compile_function(ctx, &payload.source).map(|f| Persistent::save(ctx, f))
    });
    match compiled {
        Ok(main) => PLUGIN.with(|p| {
            let _ = p.set(Compiled { payload, main });
        }),
        Err(e) => fail(&e),
    }
}

fn fail(e: &JsError) -> ! {
    eprintln!("{BUILD_ERROR_PREFIX}{}", serde_json::to_string(e).unwrap_or_default());
    std::process::abort()
}

/// The plugin's name, description and input schema.
pub fn info() -> Option<Payload> {
    PLUGIN.with(|p| p.get().map(|c| c.payload.clone()))
}

/// Runs the compiled script with `input_json` as `context.input` (and the
/// plugin's description as `context.task`, the shape `execute_agent_code`
/// gives). A refused tool call makes the outcome [`Outcome::Denied`] even
/// if the script caught it.
pub fn call(call_tool: CallTool, input_json: &str) -> Outcome {
    let Some((main, task)) = PLUGIN.with(|p| p.get().map(|c| (c.main.clone(), c.payload.description.clone()))) else {
        return Outcome::RuntimeError(plain(
            "InternalError: this is the bare plugin template; build a plugin with `memory-mcp plugin build`",
        ));
    };
    let context_json = match serde_json::from_str::<serde_json::Value>(input_json) {
        Ok(input) => serde_json::json!({ "task": task, "input": input }).to_string(),
        Err(e) => return Outcome::RuntimeError(plain(&format!("TypeError: the input is not JSON: {e}"))),
    };
    engine::take_denied();
    let outcome = engine::with_context(call_tool, |ctx| {
        if let Err(e) = engine::set_context(ctx, &context_json) {
            return Outcome::RuntimeError(e);
        }
        match main.restore(ctx) {
            Ok(f) => engine::call_function(ctx, f),
            Err(e) => Outcome::RuntimeError(plain(&format!("InternalError: {e}"))),
        }
    });
    if let Some(denied) = engine::take_denied() {
        return Outcome::Denied(denied);
    }
    outcome
}
