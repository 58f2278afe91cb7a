//! End to end: the real binary over MCP stdio runs the seed's security
//! categories and the expected semantics against the real sandbox. Every
//! case must give its proper status, and the server must answer the next
//! request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use common::{Server, spawn};
use serde_json::{Value, json};

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap_or("<none>")
}

async fn expect_status(s: &Server, code: &str, want: &str) -> Value {
    let r = s.exec(code).await;
    assert_eq!(status(&r), want, "code: {code}\nresult: {r:#}");
    // The server still answers.
    let ok = s.exec("return 1").await;
    assert_eq!(ok["output"], json!(1), "server unhealthy after: {code}");
    r
}

#[tokio::test]
async fn semantics_users_expect() {
    let s = spawn(&[]).await;
    let r = s.exec("return 1 + 2").await;
    assert_eq!(
        r,
        json!({"status": "success", "output": 3, "stdout": "", "stderr": "", "execution_time_ms": r["execution_time_ms"],
            "execution_id": r["execution_id"]})
    );
    assert_eq!(r["execution_id"].as_str().map(str::len), Some(36), "a UUID names the execution: {r}");

    let r = s.exec("console.log('hi', {a: 1}); console.error('oops'); return 'done'").await;
    assert_eq!(r["stdout"], "hi [object Object]\n");
    assert_eq!(r["stderr"], "oops\n");
    assert_eq!(r["output"], "done");

    let r = s.exec("const x = await Promise.resolve(20); await null; return x + 1").await;
    assert_eq!(r["output"], 21);

    let r = s
        .exec_with(json!({"code": "return {task: context.task, n: context.input.n * 2}", "context": {"task": "double", "input": {"n": 21}}}))
        .await;
    assert_eq!(r["output"], json!({"task": "double", "n": 42}));

    let r = s.exec("let y = 1").await;
    assert_eq!(status(&r), "success");
    assert!(r.get("output").is_none(), "undefined has no output: {r}");

    let r = s.exec("return null").await;
    assert_eq!(r["output"], Value::Null);
    assert!(r.as_object().unwrap().contains_key("output"));

    // Syntax and runtime errors are distinct, with lines.
    let r = s.exec("const a = 1;\nconst b = ;\nreturn a").await;
    assert_eq!(r["status"], "error");
    assert_eq!(r["error_type"], "syntax");
    assert_eq!(r["line"], 2, "{r}");
    assert!(r["message"].as_str().unwrap().starts_with("SyntaxError"), "{r}");

    let r = s.exec("const a = 1;\n\nnull.x;").await;
    assert_eq!(r["error_type"], "runtime");
    assert_eq!(r["line"], 3, "{r}");
    assert!(r["message"].as_str().unwrap().starts_with("TypeError"), "{r}");

    let r = s.exec("throw new Error('custom failure')").await;
    assert_eq!(r["error_type"], "runtime");
    assert_eq!(r["message"], "Error: custom failure");
    assert_eq!(r["line"], 1);

    let r = s.exec("throw 'a string'").await;
    assert_eq!(r["message"], "Uncaught a string");

    let r = s.exec("await Promise.reject(new RangeError('nope'))").await;
    assert_eq!(r["message"], "RangeError: nope");

    let r = s.exec("const o = {}; o.self = o; return o").await;
    assert_eq!(r["error_type"], "runtime");
    assert!(r["message"].as_str().unwrap().contains("JSON"), "{r}");

    let r = s.exec("await new Promise(() => {})").await;
    assert_eq!(r["error_type"], "runtime");
    assert!(r["message"].as_str().unwrap().contains("never settles"), "{r}");
}

#[tokio::test]
async fn filesystem_is_unreachable() {
    let s = spawn(&[]).await;
    for code in [
        "const fs = require('fs'); return fs.readFileSync('/etc/passwd', 'utf8')",
        "return readFile('/etc/passwd')",
        "writeFile('/tmp/pwned', 'x')",
        "return __dirname",
        "return require('fs').readFileSync('../../etc/passwd')",
        "return std.loadFile('/etc/passwd')",
        "return os.open('../../etc/passwd')",
        "return Javy.IO.readSync(3, new Uint8Array(10))",
    ] {
        let r = expect_status(&s, code, "error").await;
        assert_eq!(r["error_type"], "runtime");
        assert!(r["message"].as_str().unwrap().contains("is not defined"), "{code}: {r}");
    }
    // Even from eval, nothing to reach.
    let r = expect_status(&s, "return [typeof require, typeof process, typeof std, typeof os, typeof Deno, typeof Bun]", "success").await;
    assert_eq!(r["output"], json!(vec!["undefined"; 6]));
}

#[tokio::test]
async fn network_is_unreachable() {
    let s = spawn(&[]).await;
    for code in [
        "return await fetch('http://127.0.0.1:1/')",
        "new WebSocket('ws://127.0.0.1:1/')",
        "new XMLHttpRequest()",
        "require('http').get('http://127.0.0.1:1/')",
    ] {
        let r = expect_status(&s, code, "error").await;
        assert!(r["message"].as_str().unwrap().contains("is not defined"), "{code}: {r}");
    }
}

#[tokio::test]
async fn subprocesses_are_unreachable() {
    let s = spawn(&[]).await;
    for code in [
        "require('child_process').execSync('id')",
        "exec('id')",
        "spawn('sh', ['-c', 'id'])",
    ] {
        let r = expect_status(&s, code, "error").await;
        assert!(r["message"].as_str().unwrap().contains("is not defined"), "{code}: {r}");
    }
}

#[tokio::test]
async fn injection_runs_inside_the_sandbox_only() {
    let s = spawn(&[]).await;
    let r = expect_status(&s, "return eval('1 + 1')", "success").await;
    assert_eq!(r["output"], 2);
    let r = expect_status(&s, "return new Function('a', 'return a * 3')(5)", "success").await;
    assert_eq!(r["output"], 15);
    let r = expect_status(&s, "return eval('typeof require')", "success").await;
    assert_eq!(r["output"], "undefined");
    let r = expect_status(&s, "await import('fs')", "error").await;
    assert_eq!(r["error_type"], "runtime");
    // A SyntaxError thrown by eval at run time is a runtime error.
    let r = expect_status(&s, "eval('const = 1')", "error").await;
    assert_eq!(r["error_type"], "runtime");
}

#[tokio::test]
async fn infinite_loops_time_out() {
    let s = spawn(&[]).await;
    for code in [
        "while (true) {}",
        "for (;;) {}",
        "console.log('before'); const f = () => Promise.resolve().then(f); f(); await new Promise(() => {})",
        "async function spin() { while (true) { await null; } } await spin()",
    ] {
        let r = s.exec_with(json!({"code": code, "timeout_ms": 300})).await;
        assert_eq!(status(&r), "timeout", "{code}: {r}");
        let elapsed = r["elapsed_ms"].as_f64().unwrap();
        assert!((300.0..3000.0).contains(&elapsed), "{code}: elapsed {elapsed}");
        assert_eq!(s.exec("return 1").await["output"], 1);
    }
    let r = s.exec_with(json!({"code": "console.log('partial'); while (true) {}", "timeout_ms": 200})).await;
    assert_eq!(r["stdout"], "partial\n");
}

#[tokio::test]
async fn memory_bombs_hit_the_memory_limit() {
    let s = spawn(&[]).await;
    for code in [
        "const a = []; while (true) a.push(new Array(1e6).fill(1.5));",
        "const parts = []; for (let i = 0; ; i++) parts.push('x'.repeat(1 << 20) + i);",
        "const b = []; while (true) b.push(new ArrayBuffer(8 << 20));",
        "return new Array(2 ** 31 - 1).fill(0).length",
    ] {
        let r = s.exec_with(json!({"code": code, "memory_mb": 32})).await;
        assert_eq!(status(&r), "resource_limit", "{code}: {r}");
        assert_eq!(r["limit"], "memory", "{code}: {r}");
        assert_eq!(s.exec("return 1").await["output"], 1);
    }
}

#[tokio::test]
async fn deep_recursion_is_a_runtime_error() {
    let s = spawn(&[]).await;
    let r = expect_status(&s, "function f(n) { return f(n + 1) + 1 } return f(0)", "error").await;
    assert_eq!(r["error_type"], "runtime");
    assert!(r["message"].as_str().unwrap().contains("stack"), "{r}");
}

#[tokio::test]
async fn huge_output_is_capped() {
    let s = spawn(&[]).await;
    let r = expect_status(&s, "console.log('x'.repeat(3 * 1024 * 1024)); return 'ok'", "success").await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.len() < 1024 * 1024 + 200, "stdout is {} bytes", out.len());
    assert!(out.ends_with("bytes over the 1048576-byte limit were dropped]"), "{}", &out[out.len() - 100..]);
    let r = expect_status(&s, "for (let i = 0; i < 200000; i++) console.error('line ' + i)", "success").await;
    // Ropes make doubling cheap until QuickJS's own length cap, a runtime error.
    let r2 = expect_status(&s, "let s = 'x'; while (true) s = s + s;", "error").await;
    assert!(r2["message"].as_str().unwrap().contains("string too long"), "{r2}");
    assert!(r["stderr"].as_str().unwrap().contains("[output truncated"));
    let r = expect_status(&s, "return 'y'.repeat(2 * 1024 * 1024)", "resource_limit").await;
    assert_eq!(r["limit"], "output");
}

#[tokio::test]
async fn oversize_code_is_refused() {
    let s = spawn(&[]).await;
    let code = format!("return 1; // {}", "x".repeat(100 * 1024));
    let r = expect_status(&s, &code, "resource_limit").await;
    assert_eq!(r["limit"], "code_size");
}

#[tokio::test]
async fn tool_calls_are_denied_by_default() {
    let s = spawn(&[]).await;
    let r = expect_status(&s, "try { await tools.memory.query_memory({query: 'x'}) } catch (e) { return e.name }", "security_violation").await;
    assert!(r["reason"].as_str().unwrap().contains("memory.query_memory"), "{r}");
}

#[tokio::test]
async fn legitimate_code_works() {
    let s = spawn(&[]).await;
    let cases = [
        ("return 2 ** 10 + Math.max(3, 7) - 10 % 4", json!(1029)),
        ("return ['a', 'b', 'c'].map(s => s.toUpperCase()).join('-')", json!("A-B-C")),
        ("return 'Hello, World'.split(', ').reverse()", json!(["World", "Hello"])),
        ("const o = {a: 1, b: [1, 2]}; return {...o, c: Object.keys(o).length}", json!({"a": 1, "b": [1, 2], "c": 2})),
        ("const m = new Map([[1, 'x']]); return [...m.entries()]", json!([[1, "x"]])),
        ("return JSON.parse('{\"k\": [1, 2, 3]}').k.reduce((a, b) => a + b)", json!(6)),
        ("const sleep = () => new Promise(r => r(5)); const xs = await Promise.all([sleep(), sleep()]); return xs", json!([5, 5])),
        ("class A { constructor(x) { this.x = x } get double() { return this.x * 2 } } return new A(4).double", json!(8)),
        ("return /(\\d+)-(\\d+)/.exec('10-20').slice(1).map(Number)", json!([10, 20])),
        ("return new TextEncoder().encode('hé').length", json!(3)),
        ("return typeof Math.random() === 'number' && typeof Date.now() === 'number'", json!(true)),
    ];
    for (code, want) in cases {
        let r = expect_status(&s, code, "success").await;
        assert_eq!(r["output"], want, "{code}");
    }
}

#[tokio::test]
async fn calls_may_lower_limits_but_not_raise_them() {
    let s = spawn(&[]).await;
    let r = s.call("execute_agent_code", json!({"code": "return 1", "timeout_ms": 60000})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(common::text(&r).contains("exceeds this server's limit"), "{}", common::text(&r));
    let r = s.call("execute_agent_code", json!({"code": "return 1", "memory_mb": 4096})).await;
    assert_eq!(r.is_error, Some(true));
    let r = s.exec_with(json!({"code": "return 1", "timeout_ms": 100, "memory_mb": 16})).await;
    assert_eq!(r["output"], 1);
}

#[tokio::test]
async fn profiles_set_the_limits() {
    let s = spawn(&["--profile", "restrictive"]).await;
    assert_eq!(s.exec("return 1").await["output"], 1);
    let h = s.call("health_check", json!({})).await;
    let h = h.structured_content.unwrap();
    assert_eq!(h["sandbox"]["limits"]["timeout_ms"], 3000);
    assert_eq!(h["sandbox"]["limits"]["memory_mb"], 64);
    let r = s.call("execute_agent_code", json!({"code": "return 1", "timeout_ms": 4000})).await;
    assert_eq!(r.is_error, Some(true));
}

#[tokio::test]
async fn bad_tool_input_is_an_is_error_result() {
    let s = spawn(&[]).await;
    for args in [
        json!({}),
        json!({"code": 5}),
        json!({"code": "return 1", "timeout_ms": "soon"}),
        json!({"code": "return 1", "context": {"task": "t", "extra": 1}}),
        json!({"code": "return 1", "unknown": true}),
    ] {
        let r = s.call("execute_agent_code", args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert!(common::text(&r).contains("invalid arguments"), "{args}: {}", common::text(&r));
    }
    assert_eq!(s.exec("return 1").await["output"], 1);
}

#[tokio::test]
async fn health_and_metrics_report_executions() {
    let s = spawn(&[]).await;
    s.exec("return 1").await;
    s.exec("throw 1").await;
    s.exec_with(json!({"code": "while(true){}", "timeout_ms": 50})).await;
    let h = s.call("health_check", json!({})).await.structured_content.unwrap();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["sandbox"]["pool"]["max_concurrency"], 20);
    assert_eq!(h["executions"]["success"], 1);
    assert_eq!(h["executions"]["error"], 1);
    assert_eq!(h["executions"]["timeout"], 1);
    let m = s.call("get_metrics", json!({})).await.structured_content.unwrap();
    assert_eq!(m["executions"]["latency"]["count"], 3);
    assert!(m["executions"]["latency"]["p99_ms"].as_f64().unwrap() >= m["executions"]["latency"]["p50_ms"].as_f64().unwrap());
    assert!(m["uptime_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn nothing_leaks_between_runs() {
    let s = spawn(&[]).await;
    s.exec("globalThis.leak = 42; Object.prototype.polluted = 1").await;
    let r = s.exec("return [typeof leak, ({}).polluted]").await;
    assert_eq!(r["output"], json!(["undefined", null]));
}

/// Every execution starts from the same snapshot; `Math.random` still
/// differs between them (it asks the host's `wasi:random` each time).
#[tokio::test]
async fn math_random_differs_between_executions() {
    let s = spawn(&[]).await;
    let a = s.exec("return [Math.random(), Math.random()]").await;
    let b = s.exec("return [Math.random(), Math.random()]").await;
    assert_eq!((a["status"].as_str(), b["status"].as_str()), (Some("success"), Some("success")));
    assert_ne!(a["output"], b["output"], "the same sequence twice");
    let x = a["output"][0].as_f64().expect("a number");
    assert!((0.0..1.0).contains(&x), "{x}");
}
