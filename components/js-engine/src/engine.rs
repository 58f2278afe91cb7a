//! The QuickJS runtime: built once by `init` (and snapshotted by the host),
//! then used by `run` to compile and execute one agent script, or by the
//! plugin module to call a function compiled ahead of time.

use std::cell::{OnceCell, RefCell};
use std::ffi::CString;

use javy::quickjs::{Ctx, Function, Object, Promise, Value, qjs};
use javy::{Config, Runtime};

use crate::Outcome;
use crate::errors::{JsError, from_caught, from_value, plain};

/// The host's tool-call import: `(server, tool, args-json)` → result JSON, or
/// `(error name, message)`.
pub type CallTool = fn(&str, &str, &str) -> Result<String, (String, String)>;

/// File name QuickJS reports in stacks for the agent's code.
pub const AGENT_FILE: &str = "agent.js";

/// Installed once at initialisation; user code sees `tools`, `console` and
/// `context`. `__mcp_call_tool` is captured and removed from the global scope.
const PRELUDE: &str = r#"
(() => {
  const call = globalThis.__mcp_call_tool;
  delete globalThis.__mcp_call_tool;
  const servers = new Map();
  const serverProxy = (server) => new Proxy(Object.create(null), {
    get(_, tool) {
      if (typeof tool !== "string" || tool === "then") return undefined;
      return async (args) => {
        const json = JSON.stringify(args === undefined ? {} : args);
        if (json === undefined || json[0] !== "{") {
          throw new TypeError(`tools.${server}.${tool}: arguments must be an object`);
        }
        return JSON.parse(call(server, tool, json));
      };
    },
  });
  Object.defineProperty(globalThis, "tools", {
    value: new Proxy(Object.create(null), {
      get(_, server) {
        if (typeof server !== "string" || server === "then") return undefined;
        if (!servers.has(server)) servers.set(server, serverProxy(server));
        return servers.get(server);
      },
    }),
    enumerable: false,
    writable: false,
    configurable: false,
  });
})();
"#;

thread_local! {
    static RUNTIME: OnceCell<Runtime> = const { OnceCell::new() };
    static CALL_TOOL: OnceCell<CallTool> = const { OnceCell::new() };
    /// The first tool call refused as a security violation.
    static DENIED: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn build_runtime() -> Runtime {
    let mut config = Config::default();
    config
        .text_encoding(true)
        // serde/simd-json behind JSON.parse/stringify: several times faster
        // than QuickJS's own on agent-sized payloads.
        .simd_json_builtins(true)
        .log_stream(Box::new(std::io::stdout()))
        .err_stream(Box::new(std::io::stderr()));
    let runtime = Runtime::new(config).expect("QuickJS runtime");
    runtime.context().with(|ctx| {
        let native = Function::new(ctx.clone(), call_tool_native).expect("tool bridge");
        ctx.globals().set("__mcp_call_tool", native).expect("tool bridge");
        ctx.eval::<(), _>(PRELUDE).expect("prelude");
        // QuickJS seeds `Math.random` once, when the context is made; the
        // host snapshots that, so every run would repeat one sequence.
        // Each number comes from the host's `wasi:random` instead.
        let math: Object = ctx.globals().get("Math").expect("Math");
        let random = Function::new(ctx.clone(), random_f64).expect("Math.random").with_name("random").expect("name");
        math.set("random", random).expect("Math.random");
    });
    runtime
}

/// A uniform double in [0, 1) from 53 random bits.
fn random_f64() -> f64 {
    (random_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(target_arch = "wasm32")]
fn random_u64() -> u64 {
    wasip2::random::insecure::get_insecure_random_u64()
}

#[cfg(not(target_arch = "wasm32"))]
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Builds the runtime. Called once by the host before it snapshots the
/// instance; calling it again does nothing.
pub fn init(call_tool: CallTool) {
    CALL_TOOL.with(|c| {
        let _ = c.set(call_tool);
    });
    RUNTIME.with(|r| {
        r.get_or_init(build_runtime);
    });
}

fn call_tool_native<'js>(
    ctx: Ctx<'js>,
    server: String,
    tool: String,
    args: String,
) -> javy::quickjs::Result<String> {
    let call = CALL_TOOL.with(|c| c.get().copied());
    let Some(call) = call else {
        return Err(throw(&ctx, "Error", "tool calls are not available"));
    };
    call(&server, &tool, &args).map_err(|(name, message)| {
        if name == SECURITY_VIOLATION {
            DENIED.with(|d| {
                d.borrow_mut().get_or_insert_with(|| message.clone());
            });
        }
        throw(&ctx, &name, &message)
    })
}

/// The error name of a call refused by policy.
pub const SECURITY_VIOLATION: &str = "SecurityViolation";

/// The first tool call refused since the last [`take_denied`], if any;
/// clears it.
pub fn take_denied() -> Option<String> {
    DENIED.with(|d| d.borrow_mut().take())
}

fn throw(ctx: &Ctx<'_>, name: &str, message: &str) -> javy::quickjs::Error {
    match javy::quickjs::Exception::from_message(ctx.clone(), message) {
        Ok(ex) => {
            let _ = ex.set("name", name);
            ctx.throw(ex.into_value())
        }
        Err(e) => e,
    }
}

/// Runs `f` in the runtime's context, building the runtime first if this
/// instance was not snapshotted after [`init`].
pub fn with_context<R>(call_tool: CallTool, f: impl FnOnce(&Ctx<'_>) -> R) -> R {
    init(call_tool);
    RUNTIME.with(|r| {
        let runtime = r.get().expect("initialised above");
        runtime.context().with(|ctx| f(&ctx))
    })
}

/// Compiles `source` as the body of an async function and runs it to
/// completion, driving the job queue until its promise settles.
pub fn run(call_tool: CallTool, source: &str, context_json: &str) -> Outcome {
    with_context(call_tool, |ctx| run_in(ctx, source, context_json))
}

/// Sets the global `context` from JSON text.
pub fn set_context(ctx: &Ctx<'_>, context_json: &str) -> Result<(), JsError> {
    let mut bytes = context_json.as_bytes().to_vec();
    let value = javy::json::parse(ctx.clone(), &mut bytes)
        .map_err(|e| plain(&format!("InternalError: bad context JSON: {e}")))?;
    ctx.globals().set("context", value).map_err(|e| from_caught(ctx, e))
}

/// `source` as an async function expression. The closing brace sits on its
/// own line so a trailing `//` comment in the source cannot swallow it; the
/// opening one shares line 1 so QuickJS line numbers are the caller's.
pub fn wrap(source: &str) -> String {
    format!("(async function () {{ {source}\n}})")
}

fn run_in(ctx: &Ctx<'_>, source: &str, context_json: &str) -> Outcome {
    if let Err(e) = set_context(ctx, context_json) {
        return Outcome::RuntimeError(e);
    }
    let wrapped = format!("{}()", wrap(source));
    let compiled = match compile(ctx, &wrapped) {
        Ok(f) => f,
        Err(e) => return Outcome::SyntaxError(e),
    };
    let promise = match evaluate(ctx, compiled) {
        Ok(v) => v,
        Err(e) => return Outcome::RuntimeError(e),
    };
    let Some(promise) = promise.into_promise() else {
        return Outcome::RuntimeError(plain("InternalError: script did not produce a promise"));
    };
    settle(ctx, &promise)
}

/// Compiles and evaluates `wrap(source)`, giving the function it defines.
/// Nothing in `source` runs.
pub fn compile_function<'js>(ctx: &Ctx<'js>, source: &str) -> Result<Function<'js>, JsError> {
    let compiled = compile(ctx, &wrap(source))?;
    let value = evaluate(ctx, compiled)?;
    value
        .into_function()
        .ok_or_else(|| plain("InternalError: the script did not compile to a function"))
}

/// Calls an async function compiled by [`compile_function`] and drives it
/// to completion.
pub fn call_function<'js>(ctx: &Ctx<'js>, f: Function<'js>) -> Outcome {
    let promise = match f.call::<_, Value<'js>>(()) {
        Ok(v) => v,
        Err(e) => return Outcome::RuntimeError(from_caught(ctx, e)),
    };
    let Some(promise) = promise.into_promise() else {
        return Outcome::RuntimeError(plain("InternalError: script did not produce a promise"));
    };
    settle(ctx, &promise)
}

fn settle<'js>(ctx: &Ctx<'js>, promise: &Promise<'js>) -> Outcome {
    match promise.finish::<Value<'js>>() {
        Ok(value) => match ctx.json_stringify(value) {
            Ok(None) => Outcome::Success(None),
            Ok(Some(json)) => match json.to_string() {
                Ok(s) => Outcome::Success(Some(s)),
                Err(e) => Outcome::RuntimeError(from_caught(ctx, e)),
            },
            Err(e) => {
                let mut err = from_caught(ctx, e);
                err.message = format!("the result is not JSON-serialisable: {}", err.message);
                Outcome::RuntimeError(err)
            }
        },
        Err(javy::quickjs::Error::WouldBlock) => {
            Outcome::RuntimeError(plain("Error: the script awaited a promise that never settles"))
        }
        Err(e) => Outcome::RuntimeError(from_caught(ctx, e)),
    }
}

/// Compiles without running, so syntax errors are told apart from runtime
/// errors (a `SyntaxError` thrown by `eval` at run time is a runtime error).
fn compile<'js>(ctx: &Ctx<'js>, wrapped: &str) -> Result<Value<'js>, JsError> {
    let Ok(src) = CString::new(wrapped) else {
        return Err(plain("SyntaxError: source contains a NUL character"));
    };
    let Ok(name) = CString::new(AGENT_FILE) else {
        return Err(plain("InternalError: bad file name"));
    };
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // SAFETY: `src` is NUL-terminated and outlives the call; the context
    // pointer is live for the duration of `ctx`.
    let raw = unsafe {
        qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            src.as_ptr(),
            wrapped.len() as _,
            name.as_ptr(),
            flags,
        )
    };
    // SAFETY: we own the returned value; `from_raw` takes that ownership.
    let value = unsafe { Value::from_raw(ctx.clone(), raw) };
    if value.is_exception() {
        return Err(from_value(ctx, ctx.catch()));
    }
    Ok(value)
}

fn evaluate<'js>(ctx: &Ctx<'js>, compiled: Value<'js>) -> Result<Value<'js>, JsError> {
    // SAFETY: `JS_EvalFunction` consumes its argument, so ownership is handed
    // over with `into_raw`-style forgetting of our handle.
    let raw = unsafe {
        let f = compiled.as_raw();
        std::mem::forget(compiled);
        qjs::JS_EvalFunction(ctx.as_raw().as_ptr(), f)
    };
    // SAFETY: we own the returned value.
    let value = unsafe { Value::from_raw(ctx.clone(), raw) };
    if value.is_exception() {
        return Err(from_value(ctx, ctx.catch()));
    }
    Ok(value)
}
