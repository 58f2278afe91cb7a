//! The QuickJS runtime: built once by `init` (and snapshotted by the host),
//! then used by `run` to compile and execute one agent script, or by the
//! plugin module to call a function compiled ahead of time.

use std::cell::{OnceCell, RefCell};
use std::ffi::CString;

use javy::quickjs::{Ctx, Function, Object, Promise, Value, qjs};
use javy::{Config, Runtime};

use crate::Outcome;
use crate::errors::{JsError, from_caught, from_value, plain};
pub use crate::fence::{AGENT_FILE, body_column_offset, line1_offset, wrap};

/// The host's tool-call import: `(server, tool, args-json)` → result JSON, or
/// why there is none.
pub type CallTool = fn(&str, &str, &str) -> Result<String, ToolFailure>;

/// Why a tool call gave no result, as the component's import reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFailure {
    /// Refused (by the host's policy, or because the component was granted
    /// no tools). The script sees an error named [`SECURITY_VIOLATION`],
    /// and the run ends [`Outcome::Denied`] even if the script caught it.
    Denied(String),
    /// Any other failure, thrown in the script as an error named `name`.
    Thrown {
        /// The JS error name (`ToolError`, `ToolUnavailable`, `TypeError`).
        name: &'static str,
        /// The error's message.
        message: String,
    },
}

/// How deep tool arguments may nest: what the host's JSON reader accepts
/// (serde_json's recursion limit of 128 admits 127 levels; the same limit
/// bounds every MCP message the server reads).
pub const MAX_ARGS_DEPTH: usize = 127;

/// Installed once at initialisation; user code sees `tools`, `console` and
/// `context`. `__mcp_call_tool` is captured and removed from the global scope.
const PRELUDE: &str = r#"
(() => {
  const call = globalThis.__mcp_call_tool;
  delete globalThis.__mcp_call_tool;
  // The host reads arguments nested at most this deep (as it reads every
  // JSON message); deeper ones are refused here, with a catchable
  // RangeError, before they are serialised. Walked without recursion; an
  // object is walked again only when reached deeper than before.
  const MAX_DEPTH = __MAX_DEPTH__;
  const nestsTooDeep = (root, max = MAX_DEPTH) => {
    const stack = [root, 1];
    const seen = new Map();
    while (stack.length > 0) {
      const depth = stack.pop();
      const value = stack.pop();
      if (value === null || typeof value !== "object") continue;
      if (depth > max) return true;
      if ((seen.get(value) ?? 0) >= depth) continue;
      seen.set(value, depth);
      for (const x of Array.isArray(value) ? value : Object.values(value)) {
        if (x !== null && typeof x === "object") stack.push(x, depth + 1);
      }
    }
    return false;
  };
  // JSON.stringify with a replacer or an indent is QuickJS's own, whose
  // recursion nothing bounds in the guest (json.rs): its value is checked
  // first, as tool arguments are. (Without them, json.rs counts as it goes.)
  const stringify = JSON.stringify;
  const JSON_DEPTH = __JSON_DEPTH__;
  JSON.stringify = {
    stringify(value, replacer, space) {
      if (arguments.length > 1 && nestsTooDeep(value, JSON_DEPTH)) {
        throw new RangeError(`JSON.stringify: the value nests deeper than ${JSON_DEPTH} levels`);
      }
      return Reflect.apply(stringify, JSON, arguments);
    },
  }.stringify;
  const servers = new Map();
  const serverProxy = (server) => new Proxy(Object.create(null), {
    get(_, tool) {
      if (typeof tool !== "string" || tool === "then") return undefined;
      return async (args) => {
        if (nestsTooDeep(args)) {
          throw new RangeError(`tools.${server}.${tool}: arguments nest deeper than ${MAX_DEPTH} levels`);
        }
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

/// Builds the QuickJS runtime with the tool bridge, the bounded JSON and
/// the prelude. Each step runs fixed code of this crate on a fresh runtime,
/// so a failure is a bug here, not bad input; it traps the component
/// (caught by the host as a crash of this run), hence `expect`.
#[allow(clippy::expect_used)]
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
        crate::json::install(&ctx).expect("bounded JSON");
        let prelude = PRELUDE
            .replace("__MAX_DEPTH__", &MAX_ARGS_DEPTH.to_string())
            .replace("__JSON_DEPTH__", &crate::json::MAX_JSON_DEPTH.to_string());
        ctx.eval::<(), _>(prelude).expect("prelude");
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
    call(&server, &tool, &args).map_err(|failure| match failure {
        ToolFailure::Denied(message) => {
            DENIED.with(|d| {
                d.borrow_mut().get_or_insert_with(|| message.clone());
            });
            throw(&ctx, SECURITY_VIOLATION, &message)
        }
        ToolFailure::Thrown { name, message } => throw(&ctx, name, &message),
    })
}

/// The JS error name a script sees for a refused tool call.
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
        let runtime = r.get_or_init(build_runtime);
        runtime.context().with(|ctx| f(&ctx))
    })
}

/// Compiles `source` as the body of an async function and runs it to
/// completion, driving the job queue until its promise settles. A tool
/// call refused on the way makes it [`Outcome::Denied`], whatever the
/// script did with the error.
pub fn run(call_tool: CallTool, source: &str, context_json: &str) -> Outcome {
    take_denied();
    let outcome = with_context(call_tool, |ctx| run_in(ctx, source, context_json));
    match take_denied() {
        Some(reason) => Outcome::Denied(reason),
        None => outcome,
    }
}

/// Sets the global `context` from JSON text.
pub fn set_context(ctx: &Ctx<'_>, context_json: &str) -> Result<(), JsError> {
    let mut bytes = context_json.as_bytes().to_vec();
    let value = javy::json::parse(ctx.clone(), &mut bytes)
        .map_err(|e| plain(&format!("InternalError: bad context JSON: {e}")))?;
    ctx.globals().set("context", value).map_err(|e| from_caught(ctx, e))
}

/// What the fence's parse error means: the source closed the function it
/// runs in, or left a bracket open.
const NOT_A_BODY: &str =
    "SyntaxError: the code is not a function body: its braces or brackets do not balance, or it closes the function it runs in";

fn run_in(ctx: &Ctx<'_>, source: &str, context_json: &str) -> Outcome {
    if let Err(e) = set_context(ctx, context_json) {
        return Outcome::RuntimeError(e);
    }
    let wrapped = format!("{}()", wrap(source));
    let compiled = match compile_body(ctx, source, &wrapped) {
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
    let compiled = compile_body(ctx, source, &wrap(source))?;
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

/// Compiles `wrapped` (`source` as [`wrap`] made it) without running it.
/// An error past the source's own lines is in the fence: the source is
/// not a function body.
fn compile_body<'js>(ctx: &Ctx<'js>, source: &str, wrapped: &str) -> Result<Value<'js>, JsError> {
    crate::fence::set_line1_offset(source);
    compile(ctx, wrapped).map_err(|mut e| {
        let source_lines = u32::try_from(source.matches('\n').count() + 1).unwrap_or(u32::MAX);
        if e.line.is_some_and(|l| l > source_lines) {
            e.message = format!("{NOT_A_BODY} ({})", e.message);
            e.line = Some(source_lines);
            e.column = None;
        } else if escapes_unfenced(ctx, source) {
            e.message = format!("{} ({AS_A_BLOCK})", e.message);
        }
        e
    })
}

/// Why a source that compiles unfenced fails fenced: it closes the
/// function, or its top-level declarations clash under block rules (a
/// `var` and a function of one name; two functions of one name in strict
/// mode).
const AS_A_BLOCK: &str = "the code runs as a block inside an async function: it may not close that function, and its top-level declarations follow block rules";

/// Whether `source` compiles when wrapped without the fence: then the
/// fence is what refused it. Only compiled (into a value dropped at
/// once), never run.
fn escapes_unfenced(ctx: &Ctx<'_>, source: &str) -> bool {
    compile(ctx, &format!("(async function () {{ {source}\n}})")).is_ok()
}

/// Compiles without running, so syntax errors are told apart from runtime
/// errors (a `SyntaxError` thrown by `eval` at run time is a runtime error).
/// Compiles `wrapped` without running it, through QuickJS's C API (rquickjs
/// has no compile-only call). One of js-interpreter's two audited unsafe
/// functions, with [`evaluate`].
#[allow(unsafe_code)]
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

/// Runs a value [`compile`] made, through QuickJS's C API. Audited unsafe,
/// as [`compile`].
#[allow(unsafe_code)]
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

#[cfg(test)]
mod tests {
    //! Tool calls from a script: refusals, other failures, and the bound
    //! on how deep arguments nest. (The fence is tested in `fence.rs`.)

    use super::*;

    const CTX: &str = r#"{"task":"t","input":null}"#;

    fn no_tools(_: &str, _: &str, _: &str) -> Result<String, ToolFailure> {
        Err(ToolFailure::Thrown { name: "Error", message: "no tools here".into() })
    }

    fn echo(_: &str, _: &str, args: &str) -> Result<String, ToolFailure> {
        Ok(args.to_string())
    }

    fn refuse(server: &str, tool: &str, _: &str) -> Result<String, ToolFailure> {
        Err(ToolFailure::Denied(format!("`{server}.{tool}` is not allowed")))
    }

    /// (The tool import is fixed per thread, as it is per component: each
    /// test runs on its own thread.)
    #[test]
    fn a_refused_call_is_denied_even_when_caught() {
        let caught = "try { await tools.x.y({}); } catch (e) { return e.name; } return 'not thrown';";
        assert_eq!(run(refuse, caught, CTX), Outcome::Denied("`x.y` is not allowed".into()));
        assert_eq!(run(refuse, "return 1", CTX), Outcome::Success(Some("1".into())), "a refusal does not outlive its run");
    }

    #[test]
    fn other_tool_failures_are_thrown_under_their_name() {
        let name = "try { await tools.x.y({}); } catch (e) { return e.name + ': ' + e.message; }";
        assert_eq!(run(no_tools, name, CTX), Outcome::Success(Some("\"Error: no tools here\"".into())));
    }

    #[test]
    fn tool_arguments_nested_past_the_bound_are_a_catchable_range_error() {
        let caught = "try { await tools.x.y(a); return 'called'; } catch (e) { return e.name + ': ' + e.message; }";
        for build in [
            "let a = {}; for (let i = 0; i < 3000; i++) a = {a};",
            "let a = []; for (let i = 0; i < 100000; i++) a = [a];",
            // Cyclic, and a shared subtree reached many ways: both end.
            "let a = {}; a.self = a; a.again = a;",
        ] {
            let source = format!("{build} {caught}");
            match run(echo, &source, CTX) {
                Outcome::Success(Some(json)) => {
                    assert!(json.contains("RangeError") && json.contains("127 levels"), "{build}: {json}")
                }
                other => panic!("{build}: {other:?}"),
            }
        }
        // At the bound the call is made.
        let source = format!("let a = {{}}; for (let i = 1; i < {MAX_ARGS_DEPTH}; i++) a = {{a}}; {caught}");
        match run(echo, &source, CTX) {
            Outcome::Success(Some(json)) => assert_eq!(json, "\"called\""),
            other => panic!("{other:?}"),
        }
        // A shared subtree 200 levels deep (2^200 paths) is refused at once.
        let source = format!("let a = {{leaf: 1}}; for (let i = 0; i < 200; i++) a = {{l: a, r: a}}; {caught}");
        match run(echo, &source, CTX) {
            Outcome::Success(Some(json)) => assert!(json.contains("RangeError"), "{json}"),
            other => panic!("{other:?}"),
        }
    }
}
