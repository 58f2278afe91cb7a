//! Code mode calling MCP tools, end to end: the real binary over MCP stdio,
//! real upstream MCP servers from npm (server-everything,
//! server-filesystem) spawned by it, the deny-by-default policy, the audit,
//! TypeScript input, and progressive disclosure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::time::{Duration, Instant};

use common::upstream::{config, everything, filesystem, npm_server, policy};
use common::{Server, err, ok, spawn_in, text};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A server whose config file is `text`; the file lives in the data dir.
async fn serve(text: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config(dir.path(), text);
    let path = path.display().to_string();
    spawn_in(dir, &["--config", &path]).await
}

async fn audit(s: &Server, args: Value) -> Vec<Value> {
    ok(s, "get_tool_audit", args).await["records"].as_array().cloned().unwrap_or_default()
}

fn outcomes(records: &[Value]) -> Vec<&str> {
    records.iter().rev().map(|r| r["outcome"].as_str().unwrap_or("")).collect()
}

#[tokio::test]
async fn memory_tools_are_called_in_process_and_audited() {
    let s = serve(&policy(&["memory.*"], "")).await;
    let r = s
        .exec(
            r#"
            const { episode_id } = await tools.memory.create_episode({
              task_description: "parse the csv export", domain: "data", task_type: "code_generation" });
            await tools.memory.add_episode_step({ episode_id, step_number: 1, tool: "python", action: "parse",
              result: { type: "success" } });
            const got = await tools.memory.get_episode({ episode_id });
            let refused, bad;
            try { await tools.memory.execute_agent_code({ code: "return 1" }) } catch (e) { refused = `${e.name}: ${e.message}` }
            try { await tools.memory.get_episode({ episode_id: "nope" }) } catch (e) { bad = `${e.name}: ${e.message}` }
            return { episode_id, steps: got.steps.length, refused, bad };
            "#,
        )
        .await;
    assert_eq!(r["status"], "success", "{r}");
    let out = &r["output"];
    assert_eq!(out["steps"], 1);
    assert!(out["refused"].as_str().unwrap().contains("cannot be called from inside the sandbox"), "{out}");
    assert!(out["bad"].as_str().unwrap().starts_with("ToolError: "), "{out}");
    // The episode is in the same store the client sees.
    let ep = ok(&s, "get_episode", json!({"episode_id": out["episode_id"]})).await;
    assert_eq!(ep["task_description"], "parse the csv export");

    let records = audit(&s, json!({"execution_id": r["execution_id"]})).await;
    assert_eq!(outcomes(&records), ["ok", "ok", "ok", "unavailable", "tool_error"]);
    let first = records.last().unwrap();
    assert_eq!(first["server"], "memory");
    assert_eq!(first["tool"], "create_episode");
    assert_eq!(first["args_blake3"].as_str().unwrap().len(), 64);
    assert!(first["args_bytes"].as_u64().unwrap() > 50);
    assert!(first["at"].as_str().unwrap().starts_with("20"));
}

#[tokio::test]
async fn nothing_is_allowed_without_a_policy() {
    let s = common::spawn(&[]).await;
    let r = s.exec("return await tools.memory.health_check({})").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("memory.health_check"), "{r}");
    let records = audit(&s, json!({"outcome": "denied"})).await;
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn upstream_tools_answer_and_denied_calls_never_reach_them() {
    let root = TempDir::new().unwrap();
    std::fs::write(root.path().join("a.txt"), "hello from a file").unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let allow = ["everything.echo", "everything.get-structured-content", "fs.read_text_file"];
    let s = serve(&format!("{}{}{}", everything("everything", None), filesystem("fs", &root_path), policy(&allow, ""))).await;
    let a = root_path.join("a.txt").display().to_string();
    let r = s
        .exec_with(json!({"code": r#"
            const echo = await tools.everything.echo({ message: "hi" });
            const weather = await tools.everything["get-structured-content"]({ location: "New York" });
            const file = await tools.fs.read_text_file({ path: context.input.a });
            let failed;
            try { await tools.fs.read_text_file({ path: "/etc/passwd" }) } catch (e) { failed = { name: e.name, message: e.message } }
            return { echo, weather, file, failed };
        "#, "context": {"input": {"a": a}}}))
        .await;
    assert_eq!(r["status"], "success", "{r}");
    let out = &r["output"];
    assert_eq!(out["echo"], "Echo: hi", "text results arrive as strings");
    assert!(out["weather"].is_object(), "structured results arrive as objects: {out}");
    assert!(out["file"].to_string().contains("hello from a file"), "{out}");
    assert_eq!(out["failed"]["name"], "ToolError", "{out}");
    assert!(out["failed"]["message"].as_str().unwrap().to_lowercase().contains("denied"), "{out}");

    let b = root_path.join("b.txt");
    let r = s
        .exec_with(json!({"code": "await tools.fs.write_file({ path: context.input.b, content: 'x' }); return 1",
            "context": {"input": {"b": b.display().to_string()}}}))
        .await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("fs.write_file"), "{r}");
    assert!(!b.exists(), "a denied call must never reach the upstream");
    let records = audit(&s, json!({"execution_id": r["execution_id"]})).await;
    assert_eq!(outcomes(&records), ["denied"]);
    assert!(records[0]["error"].as_str().unwrap().contains("not allowed"));
}

#[tokio::test]
async fn rate_limit_cap_and_payload_limits_are_enforced() {
    let root = TempDir::new().unwrap();
    std::fs::write(root.path().join("big.txt"), "x".repeat(4000)).unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let limits = "rate_limit_per_minute = 3\nmax_payload_bytes = 2048\n";
    let s = serve(&format!(
        "{}{}{}",
        everything("everything", None),
        filesystem("fs", &root_path),
        policy(&["everything.echo", "fs.read_text_file"], limits)
    ))
    .await;
    let r = s.exec("for (let i = 0; i < 5; i++) await tools.everything.echo({ message: `m${i}` }); return 1").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("rate limit of 3"), "{r}");
    assert_eq!(outcomes(&audit(&s, json!({"execution_id": r["execution_id"]})).await), ["ok", "ok", "ok", "denied"]);

    let r = s.exec("return await tools.fs.read_text_file({ path: 'x'.repeat(3000) })").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("payload limit"), "{r}");
    let big = root_path.join("big.txt").display().to_string();
    let r = s.exec_with(json!({"code": "return await tools.fs.read_text_file({ path: context.input.big })",
        "context": {"input": {"big": big}}})).await;
    assert_eq!(r["status"], "security_violation", "an oversize result is refused too: {r}");
    assert!(r["reason"].as_str().unwrap().contains("result is"), "{r}");

    let capped = serve(&format!("{}{}", everything("everything", None), policy(&["everything.*"], "max_calls_per_execution = 2\n"))).await;
    let r = capped.exec("for (let i = 0; i < 3; i++) await tools.everything.echo({ message: 'm' }); return 1").await;
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("cap of 2"), "{r}");
}

#[tokio::test]
async fn an_upstream_killed_mid_call_is_reported_and_reconnected() {
    let dir = TempDir::new().unwrap();
    let pid_file = dir.path().join("everything.pid");
    let s = serve(&format!("{}{}", everything("everything", Some(&pid_file)), policy(&["everything.*"], ""))).await;
    let r = s.exec("return await tools.everything.echo({ message: 'warm' })").await;
    assert_eq!(r["output"], "Echo: warm", "{r}");
    let first_pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();

    let run = s.exec_with(json!({"code": r#"
        let first;
        try { await tools.everything["trigger-long-running-operation"]({ duration: 4, steps: 4 }) }
        catch (e) { first = `${e.name}: ${e.message}` }
        const again = await tools.everything.echo({ message: "back" });
        return { first, again };
    "#, "timeout_ms": 5000}));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let status = std::process::Command::new("kill").args(["-9", &first_pid]).status().unwrap();
        assert!(status.success());
    };
    let (r, ()) = tokio::join!(run, kill);
    assert_eq!(r["status"], "success", "{r}");
    assert!(r["output"]["first"].as_str().unwrap().starts_with("ToolUnavailable: "), "{r}");
    assert_eq!(r["output"]["again"], "Echo: back", "the next call reconnects: {r}");
    let second_pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert_ne!(first_pid, second_pid, "a new upstream process was started");
}

#[tokio::test]
async fn time_in_tool_calls_counts_against_the_timeout() {
    let s = serve(&format!("{}{}", everything("everything", None), policy(&["everything.*"], ""))).await;
    let started = Instant::now();
    let r = s
        .exec_with(json!({"code": "await tools.everything['trigger-long-running-operation']({ duration: 10, steps: 10 }); return 1",
            "timeout_ms": 1500}))
        .await;
    assert_eq!(r["status"], "timeout", "{r}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The server keeps serving, and the upstream still answers.
    let r = s.exec("return await tools.everything.echo({ message: 'still here' })").await;
    assert_eq!(r["output"], "Echo: still here", "{r}");
}

#[tokio::test]
async fn an_upstream_that_is_down_is_unavailable_and_the_server_keeps_working() {
    let s = serve(&format!("[servers.ghost]\ncommand = \"/nonexistent/mcp-server\"\n{}", policy(&["ghost.*", "memory.*"], ""))).await;
    let r = s.exec("try { await tools.ghost.anything({}) } catch (e) { return `${e.name}: ${e.message}` }").await;
    let msg = r["output"].as_str().unwrap_or_default();
    assert!(msg.starts_with("ToolUnavailable: ") && msg.contains("ghost"), "{r}");
    let found = ok(&s, "search_tools", json!({"query": "episode"})).await;
    assert!(!found["tools"].as_array().unwrap().is_empty());
    assert_eq!(found["unavailable_servers"][0]["server"], "ghost", "{found}");
    let health = ok(&s, "health_check", json!({})).await;
    assert_eq!(health["upstream_servers"][0]["state"], "down", "{health}");
    let r = s.exec("return (await tools.memory.health_check({})).status").await;
    assert_eq!(r["status"], "success", "{r}");
}

#[tokio::test]
async fn typescript_runs_and_reports_errors_at_the_callers_lines() {
    let s = serve(&policy(&["memory.*"], "")).await;
    let ts = |code: &str| json!({"code": code, "language": "typescript", "context": {"input": {"xs": [1, 2, 3]}}});
    let r = s
        .exec_with(ts("interface Sum { total: number }\n\
             const xs: number[] = context.input.xs;\n\
             const s: Sum = { total: xs.reduce((a: number, b: number): number => a + b, 0) };\n\
             const health = await tools.memory.health_check({}) as { status: string };\n\
             return { ...s, ok: typeof health.status === 'string' };"))
        .await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["output"], json!({"total": 6, "ok": true}));

    let r = s
        .exec_with(ts("type T = { a: number };\nconst t: T | null = null;\n\nif (t === null) throw new Error(\"no t\" as string);"))
        .await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["error_type"], "runtime");
    assert_eq!(r["line"], 4, "lines survive stripping: {r}");

    let r = s.exec_with(ts("const ok: number = 1;\nconst x: = 2;")).await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["error_type"], "syntax");
    assert_eq!(r["line"], 2, "{r}");
    assert!(r["message"].as_str().unwrap().starts_with("SyntaxError: "), "{r}");

    let r = s.exec_with(ts("enum Color { Red, Green }\nreturn Color.Green;")).await;
    assert_eq!(r["output"], 1, "enums are transformed: {r}");
}

#[tokio::test]
async fn search_describe_resources_and_usage_order() {
    let root = TempDir::new().unwrap();
    let s = serve(&format!(
        "{}{}{}",
        everything("everything", None),
        filesystem("fs", &root.path().canonicalize().unwrap()),
        policy(&["everything.echo", "fs.*", "memory.*"], "")
    ))
    .await;
    let found = ok(&s, "search_tools", json!({"query": "read a text file", "limit": 3})).await;
    let names: Vec<&str> = found["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"fs.read_text_file"), "{found}");
    assert!(found["tools"][0]["allowed"].as_bool().unwrap());
    let sum = ok(&s, "search_tools", json!({"query": "sum of two numbers", "limit": 1})).await;
    assert_eq!(sum["tools"][0]["name"], "everything.get-sum", "{sum}");
    assert_eq!(sum["tools"][0]["allowed"], false);

    let d = s.call("describe_tools", json!({"names": ["fs.read_text_file", "everything.get-sum", "nope.x"]})).await;
    let d = text(&d);
    assert!(d.contains("interface FsTools {") && d.contains("read_text_file(args: {"), "{d}");
    assert!(d.contains("path: string;"), "{d}");
    assert!(d.contains("// everything.get-sum: not allowed"), "{d}");
    assert!(d.contains("// not found: nope.x"), "{d}");
    assert!(err(&s, "describe_tools", json!({"names": ["nope.x"]})).await.contains("no such tool"));

    let resources = s.client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"tools://fs/read_text_file.d.ts") && uris.contains(&"tools://index.d.ts"), "{uris:?}");
    let read = s.client.read_resource(ReadResourceRequestParams::new("tools://everything/echo.d.ts")).await.unwrap();
    let body = serde_json::to_value(&read.contents[0]).unwrap();
    assert!(body["text"].as_str().unwrap().contains("echo(args: {"), "{body}");
    assert!(s.client.read_resource(ReadResourceRequestParams::new("tools://fs/nope.d.ts")).await.is_err());

    let r = s.exec("for (const m of ['a', 'b', 'c']) await tools.everything.echo({ message: m }); return 1").await;
    assert_eq!(r["status"], "success", "{r}");
    let all = ok(&s, "search_tools", json!({"query": "", "limit": 2})).await;
    assert_eq!(all["tools"][0]["name"], "everything.echo", "most used first: {all}");
    assert_eq!(all["tools"][0]["calls"], 3);
}

#[tokio::test]
async fn streamable_http_upstreams_work() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new("node")
        .arg(npm_server("server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server-everything did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let table = format!("[servers.web]\nurl = \"http://127.0.0.1:{port}/mcp\"\n");
    let s = serve(&format!("{table}{}", policy(&["web.echo"], ""))).await;
    let r = s.exec("return await tools.web.echo({ message: 'over http' })").await;
    assert_eq!(r["output"], "Echo: over http", "{r}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn the_cli_exports_declarations_and_reads_the_audit() {
    let dir = TempDir::new().unwrap();
    let cfg = config(dir.path(), &format!("{}{}", everything("everything", None), policy(&["everything.echo"], "")));
    let data = TempDir::new().unwrap();
    let data_path = data.path().to_path_buf();
    let s = spawn_in(data, &["--config", &cfg.display().to_string()]).await;
    let r = s.exec("return await tools.everything.echo({ message: 'audited' })").await;
    assert_eq!(r["output"], "Echo: audited", "{r}");
    let Server { client, data_dir } = s;
    client.cancel().await.unwrap();
    let out = dir.path().join("decls");
    let cli = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .arg("--data-dir")
            .arg(&data_path)
            .arg("--cache-dir")
            .arg(common::shared_cache())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("MEMORY_MCP_LOG", "warn")
            .output()
            .unwrap()
    };
    // The server lets go of the data dir when its client leaves.
    let deadline = Instant::now() + Duration::from_secs(15);
    let audit = loop {
        let o = cli(&["tools", "audit"]);
        if o.status.success() || Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stderr));
    let lines: Vec<Value> =
        String::from_utf8(audit.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["tool"], "echo");
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["execution_id"], r["execution_id"]);

    let o = cli(&["tools", "export", "--out", &out.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let echo = std::fs::read_to_string(out.join("everything/echo.d.ts")).unwrap();
    assert!(echo.contains("echo(args: {"), "{echo}");
    assert!(out.join("memory/query_memory.d.ts").exists());
    let index = std::fs::read_to_string(out.join("index.d.ts")).unwrap();
    let first = index.lines().find(|l| l.starts_with("/// <reference")).unwrap();
    assert!(first.contains("everything/echo.d.ts"), "most used first: {first}");
    assert!(index.contains("declare const tools: {"), "{index}");
    drop(data_dir);
}
