//! Plugins end to end: the real binary builds them (`memory-mcp plugin
//! build`) and serves them as MCP tools over stdio; `save_plugin` turns a
//! script that ran into one; the files are integrity-checked at start-up;
//! builds are deterministic; the policy holds; and the example plugins'
//! worlds match their golden WIT.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::upstream::{config, policy};
use common::{Server, err, ok, shared_cache, spawn_with};
use rmcp::model::CallToolRequestParams;
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct ListChanges(Arc<AtomicUsize>);

impl ClientHandler for ListChanges {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type S = Server<ListChanges>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `plugins/<dir>/<dir>.<ext>` and its schema and policy.
fn example(dir: &str, ext: &str) -> (PathBuf, PathBuf, PathBuf) {
    let base = repo().join("plugins").join(dir);
    (base.join(format!("{dir}.{ext}")), base.join(format!("{dir}.schema.json")), base.join(format!("{dir}.policy.toml")))
}

/// Runs `memory-mcp <args>` with `data` as its data dir (plugins in
/// `data/plugins`) and the shared artifact cache.
fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(shared_cache())
        .args(args)
        .env_remove("MEMORY_MCP_CONFIG")
        .env_remove("MEMORY_MCP_PLUGINS_DIR")
        .env("MEMORY_MCP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run memory-mcp")
}

fn out(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Builds a plugin with the CLI, failing the test if the build fails.
fn build(data: &Path, file: &Path, name: &str, extra: &[&str]) {
    let mut args = vec!["plugin", "build", file.to_str().expect("utf-8"), "--name", name, "--description", "a test plugin"];
    args.extend_from_slice(extra);
    let o = cli(data, &args);
    assert!(o.status.success(), "build {name}: {}", out(&o));
}

fn build_example(data: &Path, dir: &str, ext: &str, name: &str) {
    let (src, schema, pol) = example(dir, ext);
    let (schema, pol) = (schema.display().to_string(), pol.display().to_string());
    build(data, &src, name, &["--input-schema", &schema, "--policy", &pol]);
}

fn write_js(dir: &Path, name: &str, code: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, code).expect("write script");
    p
}

async fn serve(data: TempDir, extra: &[&str]) -> S {
    spawn_with(ListChanges::default(), data, extra).await
}

/// A server with `[sandbox.tools]` allowing `allow`.
async fn serve_allowing(data: TempDir, allow: &[&str]) -> S {
    let path = config(data.path(), &policy(allow, "")).display().to_string();
    serve(data, &["--config", &path]).await
}

async fn tool_names(s: &S) -> Vec<String> {
    s.client.list_all_tools().await.expect("tools/list").into_iter().map(|t| t.name.to_string()).collect()
}

/// Waits (plugins load in the background) until `name` is listed or not.
async fn wait_listed(s: &S, name: &str, listed: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tool_names(s).await.iter().any(|n| n == name) == listed {
            return;
        }
        assert!(Instant::now() < deadline, "{name} listed={listed} never held: {:?}", tool_names(s).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_changes(s: &S, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.client.service().0.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "no tools/list_changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn restart(s: S, extra: &[&str]) -> S {
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop the server");
    tokio::time::sleep(Duration::from_millis(200)).await;
    serve(data_dir, extra).await
}

#[tokio::test]
async fn build_list_call_remove_over_mcp() {
    let data = tempfile::tempdir().expect("temp dir");
    build_example(data.path(), "word-stats", "ts", "word_stats");
    let listed = cli(data.path(), &["plugin", "list"]);
    assert!(out(&listed).contains("word_stats\tok\tpure-plugin\ttypescript"), "{}", out(&listed));

    let s = serve(data, &[]).await;
    wait_listed(&s, "word_stats", true).await;
    let tools = s.client.list_all_tools().await.expect("tools/list");
    let tool = tools.iter().find(|t| t.name == "word_stats").expect("listed");
    assert_eq!(tool.input_schema["required"], json!(["text"]), "the schema from the build");

    let r = ok(&s, "word_stats", json!({"text": "The cat sat. The cat ran!", "top": 1})).await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["output"], json!({"words": 6, "distinct": 4, "sentences": 2, "frequent": [{"word": "cat", "count": 2}]}));
    // Arguments that do not fit the declared input_schema are refused
    // before the script runs (issue 18), naming the failing path.
    let bad = s.call("word_stats", json!({"text": 7})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(common::text(&bad).contains("/text"), "{}", common::text(&bad));

    let listed = ok(&s, "list_plugins", json!({})).await;
    assert_eq!(listed["plugins"][0]["name"], "word_stats");
    assert_eq!(listed["plugins"][0]["world"], "pure-plugin");

    let before = s.client.service().0.load(Ordering::SeqCst);
    ok(&s, "remove_plugin", json!({"name": "word_stats"})).await;
    wait_changes(&s, before + 1).await;
    assert!(!tool_names(&s).await.contains(&"word_stats".to_string()));
    let gone = s.client.call_tool(CallToolRequestParams::new("word_stats")).await;
    assert!(gone.is_err(), "a removed plugin is an unknown tool: {gone:?}");
    let files: Vec<_> = std::fs::read_dir(s.data_dir.path().join("plugins/tools")).expect("dir").collect();
    assert!(files.is_empty(), "files left: {files:?}");
    assert!(err(&s, "remove_plugin", json!({"name": "word_stats"})).await.contains("no plugin named"));
}

#[tokio::test]
async fn a_plugin_built_while_the_server_runs_appears_with_list_changed() {
    let s = serve(tempfile::tempdir().expect("temp dir"), &[]).await;
    // Let start-up settle (the first sync of an empty directory).
    ok(&s, "health_check", json!({})).await;
    let before = s.client.service().0.load(Ordering::SeqCst);
    let src = write_js(s.data_dir.path(), "twice.js", "return context.input.n * 2;");
    build(s.data_dir.path(), &src, "twice", &[]);
    wait_changes(&s, before + 1).await;
    wait_listed(&s, "twice", true).await;
    assert_eq!(ok(&s, "twice", json!({"n": 21})).await["output"], 42);
    let o = cli(s.data_dir.path(), &["plugin", "remove", "twice"]);
    assert!(o.status.success(), "{}", out(&o));
    wait_listed(&s, "twice", false).await;
}

#[tokio::test]
async fn save_plugin_from_an_execution_survives_restart() {
    let s = serve_allowing(tempfile::tempdir().expect("temp dir"), &["memory.*"]).await;
    let id = ok(&s, "create_episode", json!({"task_description": "fix the flaky upload test", "domain": "ci", "task_type": "debugging"}))
        .await["episode_id"]
        .clone();
    ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "retried", "completed": ["a"], "failed": []}})).await;
    let code = r#"
        const found = await tools.memory.query_memory({ query: context.input.q, limit: 5 });
        return { q: context.input.q, task: typeof context.task, ids: found.results.map((r) => r.episode_id) };
    "#;
    let ran = s.exec_with(json!({"code": code, "context": {"task": "find", "input": {"q": "flaky upload"}}})).await;
    assert_eq!(ran["status"], "success", "{ran}");

    let before = s.client.service().0.load(Ordering::SeqCst);
    let schema = json!({"type": "object", "properties": {"q": {"type": "string", "description": "words"}}, "required": ["q"]});
    let saved = ok(
        &s,
        "save_plugin",
        json!({"execution_id": ran["execution_id"], "name": "find_episodes", "description": "Episodes matching q", "input_schema": schema}),
    )
    .await;
    assert_eq!(saved["saved"]["allow_tools"], json!(["memory.query_memory"]), "least privilege from the audit: {saved}");
    assert_eq!(saved["saved"]["world"], "tool-plugin");
    wait_changes(&s, before + 1).await;
    assert!(tool_names(&s).await.contains(&"find_episodes".to_string()));

    // The same input gives the same output as the execution did.
    let called = ok(&s, "find_episodes", json!({"q": "flaky upload"})).await;
    assert_eq!(called["output"], ran["output"], "{called}");
    assert_eq!(called["output"]["ids"], json!([id]));

    // Refusals: an unknown execution, a failed one, a taken name, hostile names.
    let unknown = err(&s, "save_plugin", json!({"execution_id": uuid::Uuid::now_v7(), "name": "x", "description": "d"})).await;
    assert!(unknown.contains("no execution"), "{unknown}");
    let failed = s.exec("throw new Error('no')").await;
    let e = err(&s, "save_plugin", json!({"execution_id": failed["execution_id"], "name": "x", "description": "d"})).await;
    assert!(e.contains("only code that ran successfully"), "{e}");
    let e = err(&s, "save_plugin", json!({"execution_id": ran["execution_id"], "name": "find_episodes", "description": "d"})).await;
    assert!(e.contains("replace"), "{e}");
    for bad in ["../evil", "a/b", "UPPER", "x.wasm", "execute_agent_code"] {
        let e = err(&s, "save_plugin", json!({"execution_id": ran["execution_id"], "name": bad, "description": "d"})).await;
        assert!(e.contains("not allowed") || e.contains("taken"), "{bad}: {e}");
    }
    assert!(!s.data_dir.path().join("evil.wasm").exists());

    let config = s.data_dir.path().join("memory-mcp.toml").display().to_string();
    let s = restart(s, &["--config", &config]).await;
    wait_listed(&s, "find_episodes", true).await;
    let again = ok(&s, "find_episodes", json!({"q": "flaky upload"})).await;
    assert_eq!(again["output"], ran["output"]);
}

#[tokio::test]
async fn tampered_and_incomplete_plugins_are_refused_and_the_rest_load() {
    let data = tempfile::tempdir().expect("temp dir");
    let src = write_js(data.path(), "p.js", "return 'fine';");
    for name in ["good", "bad_wasm", "bad_policy", "unknown_field", "missing_file"] {
        build(data.path(), &src, name, &[]);
    }
    let dir = data.path().join("plugins/tools");
    // A flipped byte in the component.
    let mut wasm = std::fs::read(dir.join("bad_wasm.wasm")).expect("wasm");
    let mid = wasm.len() / 2;
    wasm[mid] ^= 0xff;
    std::fs::write(dir.join("bad_wasm.wasm"), wasm).expect("write");
    // A policy granting more after the build.
    let pol = dir.join("bad_policy.policy.toml");
    let text = std::fs::read_to_string(&pol).expect("policy").replace("allow = []", "allow = [\"memory.*\"]");
    std::fs::write(&pol, text).expect("write");
    // An unknown policy field, with the manifest's checksum updated to match.
    let pol = dir.join("unknown_field.policy.toml");
    let text = std::fs::read_to_string(&pol).expect("policy").replacen("version = 1\n", "version = 1\nallow_network = true\n", 1);
    std::fs::write(&pol, &text).expect("write");
    let manifest_path = dir.join("unknown_field.plugin.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    manifest["policy"]["bytes"] = json!(text.len());
    manifest["policy"]["blake3"] = json!(blake3::hash(text.as_bytes()).to_hex().to_string());
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).expect("json")).expect("write");
    std::fs::remove_file(dir.join("missing_file.wasm")).expect("remove");

    let verify = cli(data.path(), &["plugin", "verify"]);
    assert!(!verify.status.success());
    let text = out(&verify);
    assert!(text.contains("good: ok"), "{text}");
    assert!(text.contains("4 of 5 plugins refused"), "{text}");

    let s = serve(data, &[]).await;
    wait_listed(&s, "good", true).await;
    let listed = ok(&s, "list_plugins", json!({})).await;
    let names: Vec<&str> = listed["plugins"].as_array().expect("plugins").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["good"], "{listed}");
    let reason = |name: &str| -> String {
        listed["refused"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .and_then(|r| r["reason"].as_str())
            .unwrap_or_else(|| panic!("{name} not refused: {listed}"))
            .to_string()
    };
    assert!(reason("bad_wasm").contains("bad_wasm.wasm does not match its checksum"), "{}", reason("bad_wasm"));
    assert!(reason("bad_policy").contains("bad_policy.policy.toml does not match its checksum"), "{}", reason("bad_policy"));
    assert!(reason("unknown_field").contains("unknown field `allow_network`"), "{}", reason("unknown_field"));
    assert!(reason("missing_file").contains("missing_file.wasm is missing"), "{}", reason("missing_file"));
    for refused in ["bad_wasm", "bad_policy", "unknown_field", "missing_file"] {
        assert!(!tool_names(&s).await.contains(&refused.to_string()));
    }
    assert_eq!(ok(&s, "good", json!({})).await["output"], "fine");
}

#[test]
fn malicious_names_are_refused_by_the_cli() {
    let data = tempfile::tempdir().expect("temp dir");
    let src = write_js(data.path(), "p.js", "return 1;");
    for bad in ["../evil", "/tmp/evil", "a/../../b", "evil.wasm", "", "Evil", "execute_agent_code"] {
        let o = cli(data.path(), &["plugin", "build", src.to_str().expect("utf-8"), "--name", bad, "--description", "d"]);
        assert!(!o.status.success(), "{bad:?} was accepted");
        let text = out(&o);
        assert!(text.contains("not allowed") || text.contains("empty") || text.contains("taken"), "{bad:?}: {text}");
        let o = cli(data.path(), &["plugin", "remove", bad]);
        assert!(!o.status.success(), "remove {bad:?} was accepted");
    }
    assert!(!data.path().join("evil.wasm").exists() && !Path::new("/tmp/evil.wasm").exists());
    assert!(!data.path().join("plugins").exists() || std::fs::read_dir(data.path().join("plugins")).expect("dir").next().is_none());
}

#[test]
fn builds_are_deterministic() {
    let (a, b) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    for data in [a.path(), b.path()] {
        build_example(data, "word-stats", "ts", "word_stats");
        build_example(data, "similar-episodes", "js", "similar_episodes");
    }
    for file in ["word_stats.wasm", "word_stats.plugin.json", "similar_episodes.wasm", "similar_episodes.plugin.json"] {
        let x = std::fs::read(a.path().join("plugins/tools").join(file)).expect("first build");
        let y = std::fs::read(b.path().join("plugins/tools").join(file)).expect("second build");
        assert!(x == y, "{file} differs between two builds of the same input");
    }
}

#[tokio::test]
async fn a_plugin_calling_outside_its_policy_is_a_security_violation() {
    let data = tempfile::tempdir().expect("temp dir");
    let pol = data.path().join("narrow.toml");
    std::fs::write(&pol, "version = 1\n[tools]\nallow = [\"memory.query_memory\"]\n").expect("policy");
    let pol = pol.display().to_string();
    let outside = write_js(
        data.path(),
        "outside.js",
        "let caught; try { await tools.memory.create_episode({ task_description: 'x', domain: 'd', task_type: 'testing' }); } catch (e) { caught = e.name; } return caught;",
    );
    build(data.path(), &outside, "outside", &["--policy", &pol]);
    let pure = write_js(data.path(), "pure.js", "return await tools.memory.query_memory({ query: 'x' });");
    build(data.path(), &pure, "pure_caller", &[]);
    let wide = data.path().join("wide.toml");
    std::fs::write(&wide, "version = 1\n[tools]\nallow = [\"memory.*\"]\n").expect("policy");
    let wide = wide.display().to_string();
    let upstream = write_js(data.path(), "health.js", "return await tools.memory.health_check({});");
    build(data.path(), &upstream, "beyond_server", &["--policy", &wide]);

    // The server allows memory.query_memory and memory.create_episode only.
    let s = serve_allowing(data, &["memory.query_memory", "memory.create_episode"]).await;
    wait_listed(&s, "beyond_server", true).await;
    let r = s.call("outside", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    let r = r.structured_content.expect("structured");
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("not allowed by plugin `outside`'s policy"), "{r}");
    let audit = ok(&s, "get_tool_audit", json!({"execution_id": r["execution_id"]})).await;
    assert_eq!(audit["records"][0]["outcome"], "denied", "{audit}");
    // Nothing was created.
    let q = ok(&s, "query_memory", json!({"query": "x"})).await;
    assert_eq!(q["results"], json!([]));

    let r = s.call("pure_caller", json!({})).await.structured_content.expect("structured");
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("grants no tool calls"), "{r}");

    // The plugin's policy allows memory.*, but the server's does not.
    let r = s.call("beyond_server", json!({})).await.structured_content.expect("structured");
    assert_eq!(r["status"], "security_violation", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("not allowed by the sandbox policy"), "{r}");
}

/// `wasm-tools component wit` of each example plugin, kept in the repo;
/// every build validates, and the imports follow the policy. Refresh with
/// `UPDATE_GOLDEN=1 ./scripts/test.sh plugin_wit`.
#[test]
fn example_js_plugin_wit_matches_golden() {
    let data = tempfile::tempdir().expect("temp dir");
    for (dir, ext, name, tools) in [("word-stats", "ts", "word_stats", false), ("similar-episodes", "js", "similar_episodes", true)] {
        build_example(data.path(), dir, ext, name);
        let bytes = std::fs::read(data.path().join("plugins/tools").join(format!("{name}.wasm"))).expect("built");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all()).validate_all(&bytes).expect("wasm-tools validate");
        let decoded = wit_component::decode(&bytes).expect("a component");
        let mut printer = wit_component::WitPrinter::default();
        printer.print(decoded.resolve(), decoded.package(), &[]).expect("print");
        let wit = printer.output.to_string();
        assert!(wit.contains("export memory-mcp:tool-call/plugin@0.2.0;"), "{wit}");
        assert_eq!(wit.contains("import memory-mcp:tool-call/tools@0.2.0;"), tools, "imports follow the policy: {wit}");
        let golden = repo().join("plugins").join(dir).join(format!("{dir}.wit"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &wit).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden).expect("golden file (refresh with UPDATE_GOLDEN=1)");
        assert_eq!(wit, want, "{dir}'s WIT changed; refresh with UPDATE_GOLDEN=1 if intended");
    }
}

/// Outside review of issue 14: two `save_plugin` calls of one name, built
/// at the same time, interleaved their files (a manifest of one and a
/// component of the other, then refused for its checksum), and both passed
/// the `replace: false` check made before their builds. Now exactly one is
/// saved, whole, and it answers.
#[tokio::test]
async fn concurrent_saves_of_one_name_leave_one_whole_plugin() {
    let s = serve(tempfile::tempdir().expect("data"), &["--max-concurrency", "4"]).await;
    for trial in 0..12 {
        let a = s.exec(&format!("return 'a{trial}'")).await;
        let b = s.exec(&format!("return 'b{trial}' + '.'.repeat({trial})")).await;
        let name = format!("race{trial}");
        let save = |ran: &Value| {
            s.call("save_plugin", json!({"execution_id": ran["execution_id"], "name": name, "description": "d"}))
        };
        let (ra, rb) = tokio::join!(save(&a), save(&b));
        let saved: Vec<&str> = [("a", &ra), ("b", &rb)].iter().filter(|(_, r)| r.is_error != Some(true)).map(|(w, _)| *w).collect();
        assert_eq!(saved.len(), 1, "trial {trial}: {ra:?} / {rb:?}");
        let want = if saved[0] == "a" { a["output"].clone() } else { b["output"].clone() };
        wait_listed(&s, &name, true).await;
        let listed = ok(&s, "list_plugins", json!({})).await;
        assert!(listed["refused"].as_array().is_none_or(|r| r.is_empty()), "trial {trial}: {listed}");
        assert_eq!(ok(&s, &name, json!({})).await["output"], want, "trial {trial}");
    }
}
