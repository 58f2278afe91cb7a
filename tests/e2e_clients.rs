//! memory-mcp as real clients see it (issue 18): the official TypeScript
//! SDK client's full session, the MCP Inspector CLI's strict schema
//! portability check, plugins in the first `tools/list` on a cold artifact
//! cache, a 2026-07-28 client hearing tool changes on
//! `subscriptions/listen`, TypeScript run without the flag, the prompts
//! and `memory://` resources, and episode subscriptions
//! (`resources/subscribe`, issue 19). Node 22, the SDK and the Inspector
//! come from scripts/npm-http.sh (tests/http/package.json).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
#[path = "common/fake_http.rs"]
mod fake_http;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::http::node22;
use common::{ok, spawn, spawn_in};
use rmcp::model::{
    CallToolRequestParams, GetPromptRequestParams, ProtocolVersion, ReadResourceRequestParams, ServerNotification,
    SubscriptionFilter,
};
use rmcp::transport::TokioChildProcess;
use rmcp::service::ClientServiceExt as _;
use rmcp::{ClientLifecycleMode, ServiceExt};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/sdk/<name>`, copied next to target/npm-http/node_modules (where
/// Node resolves the SDK).
fn sdk_script(name: &str) -> PathBuf {
    let to = repo().join("target/npm-http").join(name);
    std::fs::copy(repo().join("tests/sdk").join(name), &to).expect("copy the script into target/npm-http");
    to
}

/// The server's arguments for a fresh data dir and the shared cache.
fn server_args(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_string(),
        data.display().to_string(),
        "--cache-dir".to_string(),
        common::shared_cache().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test]
async fn the_official_typescript_sdk_runs_a_full_session() {
    let data = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(node22())
            .arg(sdk_script("session.mjs"))
            .arg(common::bin())
            .args(server_args(data.path(), &["--list-all-tools"]))
            .env_remove("MEMORY_MCP_CONFIG")
            .env("MEMORY_MCP_LOG", "warn")
            .output(),
    )
    .await
    .expect("the session ends within 300 s")
    .expect("run node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the SDK session failed: {stderr}\n{stdout}");
    let findings: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default()).expect("findings");
    eprintln!("TS SDK session: {findings}");
    assert!(findings["validated"].as_u64().unwrap() >= 24, "{findings}");
    assert!(findings["progress"].as_u64().unwrap() >= 1, "{findings}");
}

/// `inspector --cli <server> --method tools/list --strict --format json`:
/// exit 0 and no `schemaFindings` (errors or warnings).
async fn inspector_strict(extra: &[&str]) -> usize {
    let data = tempfile::tempdir().unwrap();
    let cli = repo().join("target/npm-http/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    assert!(cli.exists(), "{} is missing: run scripts/npm-http.sh", cli.display());
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(node22())
            .arg(cli)
            .arg("--cli")
            .arg(common::bin())
            .args(server_args(data.path(), extra))
            .args(["--method", "tools/list", "--strict", "--format", "json"])
            .env_remove("MEMORY_MCP_CONFIG")
            .env("MEMORY_MCP_LOG", "warn")
            .output(),
    )
    .await
    .expect("the Inspector ends within 180 s")
    .expect("run the Inspector");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inspector --strict failed ({:?}): {stderr}\n{stdout}", out.status.code());
    let envelope: Value = serde_json::from_str(stdout.trim()).expect("one JSON envelope");
    assert!(envelope.get("schemaFindings").is_none(), "portability findings: {}", envelope["schemaFindings"]);
    assert!(!stderr.contains("Schema portability"), "{stderr}");
    envelope["result"]["tools"].as_array().expect("tools").len()
}

#[tokio::test]
async fn the_inspector_strict_portability_check_finds_nothing() {
    assert_eq!(inspector_strict(&[]).await, 7);
    assert!(inspector_strict(&["--list-all-tools"]).await >= 27);
}

/// Builds plugin `name` with the CLI into `data/plugins`, with its own
/// artifact cache (so the server's stays cold).
fn build_plugin(data: &Path, cache: &Path, name: &str, code: &str) {
    let script = data.join(format!("{name}.js"));
    std::fs::write(&script, code).unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(cache)
        .args(["plugin", "build", script.to_str().unwrap(), "--name", name, "--description", "Adds one to n."])
        .env_remove("MEMORY_MCP_CONFIG")
        .env_remove("MEMORY_MCP_PLUGINS_DIR")
        .env("MEMORY_MCP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run memory-mcp plugin build");
    assert!(out.status.success(), "plugin build: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn plugins_are_in_the_first_tools_list_on_a_cold_cache_and_a_first_call_waits() {
    let data = tempfile::tempdir().unwrap();
    let build_cache = tempfile::tempdir().unwrap();
    build_plugin(data.path(), build_cache.path(), "plus_one", "return (context.input.n ?? 0) + 1;");
    // A cold cache: the runtime and the plugin's component compile after start.
    let cold = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(data.path())
        .arg("--cache-dir")
        .arg(cold.path())
        .env_remove("MEMORY_MCP_CONFIG")
        .env_remove("MEMORY_MCP_PLUGINS_DIR")
        .env("MEMORY_MCP_LOG", "warn")
        .stderr(std::process::Stdio::null());
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.expect("initialize");
    let started = Instant::now();
    let tools = client.list_all_tools().await.expect("tools/list");
    let listed_after = started.elapsed();
    let plugin = tools.iter().find(|t| t.name == "plus_one").unwrap_or_else(|| {
        panic!("the plugin is missing from the first tools/list: {:?}", tools.iter().map(|t| &t.name).collect::<Vec<_>>())
    });
    assert!(plugin.output_schema.is_some() && plugin.annotations.is_some());
    // The first call waits for the compile and answers.
    let r = client
        .call_tool(CallToolRequestParams::new("plus_one").with_arguments(json!({"n": 41}).as_object().unwrap().clone()))
        .await
        .expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(r.structured_content.as_ref().unwrap()["output"], 42);
    eprintln!("cold cache: listed after {listed_after:?}, first call answered after {:?}", started.elapsed());
    let health = client.call_tool(CallToolRequestParams::new("health_check")).await.unwrap();
    assert_eq!(health.structured_content.unwrap()["sandbox"]["artifact_cache_hit"], false, "the cache was cold");
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_2026_07_28_client_hears_tool_changes_on_subscriptions_listen() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = common::command(&data, &[]);
    cmd.env_remove("MEMORY_MCP_PLUGINS_DIR");
    let client = ()
        .serve_with_lifecycle(
            TokioChildProcess::new(cmd).unwrap(),
            ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
        )
        .await
        .expect("server/discover");
    let mut subscription = client
        .listen(SubscriptionFilter::builder().tools_list_changed().prompts_list_changed().build())
        .await
        .expect("subscriptions/listen is answered");
    assert_eq!(subscription.acknowledged(), &SubscriptionFilter::builder().tools_list_changed().build());
    // A plugin built while the server runs: its watcher loads it.
    let build_cache = tempfile::tempdir().unwrap();
    build_plugin(data.path(), build_cache.path(), "plus_two", "return (context.input.n ?? 0) + 2;");
    let heard = tokio::time::timeout(Duration::from_secs(120), subscription.next())
        .await
        .expect("a notification within 120 s")
        .expect("the stream")
        .expect("not ended");
    assert!(matches!(heard, ServerNotification::ToolListChangedNotification(_)), "{heard:?}");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "plus_two"));
    subscription.cancel().await.ok();
    client.cancel().await.ok();
}

#[tokio::test]
async fn typescript_runs_without_the_flag_and_javascript_errors_keep_their_positions() {
    let s = spawn(&[]).await;
    let out = s.exec("const x: number = 41; return x + 1").await;
    assert_eq!(out["status"], "success", "{out}");
    assert_eq!(out["output"], 42);
    let typed = s.exec("interface P { n: number }\nconst p: P = { n: 2 };\nreturn p.n as number;").await;
    assert_eq!(typed["output"], 2, "{typed}");
    // A JavaScript syntax error that is no TypeScript either: the JS error, at its JS line.
    let bad = s.exec("const a = 1;\nconst b = ;\nreturn a;").await;
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["error_type"], "syntax", "{bad}");
    assert_eq!(bad["line"], 2, "{bad}");
    // A runtime error is not retried.
    let thrown = s.exec("throw new Error('once')").await;
    assert_eq!(thrown["error_type"], "runtime", "{thrown}");
    // TypeScript saved as a plugin builds as TypeScript.
    let saved = ok(&s, "save_plugin", json!({"execution_id": out["execution_id"], "name": "typed", "description": "Returns 42."})).await;
    assert_eq!(saved["saved"]["language"], "typescript", "{saved}");
}

#[tokio::test]
async fn prompts_and_memory_resources() {
    let data = tempfile::tempdir().unwrap();
    let s = spawn_in(data, &[]).await;
    let ep = ok(&s, "create_episode", json!({"task_description": "migrate the billing schema", "domain": "db", "task_type": "refactoring"})).await;
    let id = ep["episode_id"].as_str().unwrap().to_string();
    ok(&s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "psql", "action": "alter table", "result": {"type": "success"}, "latency_ms": 5})).await;
    ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;

    let prompts = s.client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["start_task", "record_what_i_did"]);
    let args = |v: Value| v.as_object().unwrap().clone();
    let start = s
        .client
        .get_prompt(GetPromptRequestParams::new("start_task").with_arguments(args(json!({"description": "billing schema migration"}))))
        .await
        .unwrap();
    let text = serde_json::to_string(&start.messages).unwrap();
    assert!(text.contains(&id), "start_task shows the related episode: {text}");
    let missing = s.client.get_prompt(GetPromptRequestParams::new("start_task")).await;
    assert!(missing.is_err(), "a missing required argument is refused");
    let unknown = s.client.get_prompt(GetPromptRequestParams::new("nope")).await;
    assert!(unknown.is_err());

    let templates = s.client.list_all_resource_templates().await.unwrap();
    let uris: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(uris.contains(&"memory://episodes/{id}") && uris.contains(&"memory://patterns/{id}"), "{uris:?}");
    let resources = s.client.list_all_resources().await.unwrap();
    let uri = format!("memory://episodes/{id}");
    assert!(resources.iter().any(|r| r.uri == uri), "the episode is listed");
    let read = s.client.read_resource(ReadResourceRequestParams::new(uri.clone())).await.unwrap();
    let body = serde_json::to_string(&read.contents).unwrap();
    assert!(body.contains("migrate the billing schema"), "{body}");
    let gone = s.client.read_resource(ReadResourceRequestParams::new(format!("memory://episodes/{}", uuid::Uuid::now_v7()))).await;
    assert!(gone.is_err(), "an unknown episode is an error");
    let bad = s.client.read_resource(ReadResourceRequestParams::new("memory://episodes/not-a-uuid")).await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn resources_list_pages_are_bounded() {
    let s = spawn(&[]).await;
    for n in 0..105 {
        ok(&s, "create_episode", json!({"task_description": format!("task {n}"), "domain": "d", "task_type": "testing"})).await;
    }
    let first = s.client.list_resources(None).await.unwrap();
    let episodes = first.resources.iter().filter(|r| r.uri.starts_with("memory://episodes/")).count();
    assert_eq!(episodes, 100, "one page holds at most 100");
    let cursor = first.next_cursor.clone().expect("a next page");
    let second = s
        .client
        .list_resources(Some(rmcp::model::PaginatedRequestParams::default().with_cursor(Some(cursor))))
        .await
        .unwrap();
    assert_eq!(second.resources.iter().filter(|r| r.uri.starts_with("memory://episodes/")).count(), 5);
    assert!(second.next_cursor.is_none());
    let all = s.client.list_all_resources().await.unwrap();
    assert_eq!(all.iter().filter(|r| r.uri.starts_with("memory://episodes/")).count(), 105);
}

/// Each `notifications/progress`: its progress and total.
type Figures = Vec<(f64, Option<f64>)>;

/// Counts `notifications/progress` and keeps the last figures.
#[derive(Clone, Default)]
struct Progress(std::sync::Arc<std::sync::Mutex<Figures>>);

impl rmcp::ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.lock().unwrap().push((params.progress, params.total));
    }
}

#[tokio::test]
async fn configure_embeddings_wait_reports_re_embedding_progress() {
    use rmcp::model::{NumberOrString, ProgressToken, RequestParamsMeta as _};
    let fake = fake_http::FakeProvider::start();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("memory-mcp.toml");
    std::fs::write(
        &config,
        format!("[embeddings.providers.ollama]\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"fake-a\"\n", fake.url),
    )
    .unwrap();
    let progress = Progress::default();
    let s = common::spawn_with(progress.clone(), data, &["--config", config.to_str().unwrap()]).await;
    for n in 0..20 {
        let ep = ok(&s, "create_episode", json!({"task_description": format!("task number {n}"), "domain": "d", "task_type": "testing"})).await;
        ok(&s, "complete_episode", json!({"episode_id": ep["episode_id"], "outcome": {"outcome_type": "success", "verdict": "ok"}})).await;
    }
    let mut params = CallToolRequestParams::new("configure_embeddings")
        .with_arguments(json!({"provider": "ollama", "wait": true}).as_object().unwrap().clone());
    params.set_progress_token(ProgressToken(NumberOrString::Number(7)));
    let r = tokio::time::timeout(Duration::from_secs(300), s.client.call_tool(params)).await.expect("answered").expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let out = r.structured_content.unwrap();
    assert_eq!(out["reembedding"], true, "{out}");
    assert_eq!(out["remaining"], 0, "it waited for the re-embedding: {out}");
    let queued = out["queued"].as_f64().unwrap();
    assert!(queued >= 20.0, "{out}");
    let seen = progress.0.lock().unwrap().clone();
    assert!(!seen.is_empty(), "no progress notification");
    assert!(seen.windows(2).all(|w| w[1].0 > w[0].0), "progress grows: {seen:?}");
    assert!(seen.iter().all(|(_, total)| *total == Some(queued)), "{seen:?}");
    assert_eq!(seen.last().unwrap().0, queued, "the last report is the whole: {seen:?}");
}

/// Passes on each `notifications/resources/updated` URI.
#[derive(Clone)]
struct Updated(tokio::sync::mpsc::UnboundedSender<String>);

impl rmcp::ClientHandler for Updated {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(params.uri);
    }
}

/// `resources/subscribe` (issue 19): a subscribed episode's changes are
/// announced to the session, an unsubscribed one's are not, a URI the
/// server does not serve is an error naming it, and a session's
/// subscriptions are bounded.
#[tokio::test]
#[allow(deprecated)] // resources/subscribe is legacy-only in rmcp (2026-07-28 has subscriptions/listen)
async fn subscribed_episodes_announce_their_changes() {
    use rmcp::model::{SubscribeRequestParams, UnsubscribeRequestParams};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let s = common::spawn_with(Updated(tx), tempfile::tempdir().unwrap(), &[]).await;
    let caps = s.client.peer_info().expect("initialized").capabilities.resources.clone().expect("resources");
    assert_eq!(caps.subscribe, Some(true), "resources.subscribe is advertised");
    let new_episode = |n: usize| json!({"task_description": format!("watched task {n}"), "domain": "d", "task_type": "testing"});
    let step = |id: &Value, n: u32| json!({"episode_id": id, "step_number": n, "tool": "t", "action": "a", "result": {"type": "success"}, "latency_ms": 1});
    let a = ok(&s, "create_episode", new_episode(0)).await["episode_id"].clone();
    let b = ok(&s, "create_episode", new_episode(1)).await["episode_id"].clone();
    let (uri_a, uri_b) = (format!("memory://episodes/{}", a.as_str().unwrap()), format!("memory://episodes/{}", b.as_str().unwrap()));
    s.client.subscribe(SubscribeRequestParams::new(uri_a.clone())).await.expect("subscribe to a");

    ok(&s, "add_episode_step", step(&a, 1)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a notification for a").unwrap();
    assert_eq!(got, uri_a);
    ok(&s, "update_episode", json!({"episode_id": a, "metadata": {"k": "v"}})).await;
    let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a metadata change is announced").unwrap();
    assert_eq!(got, uri_a);

    // Unsubscribed from a, subscribed to b: a's next step is not announced,
    // b's (made after it) is, and nothing about a comes before or after it.
    s.client.unsubscribe(UnsubscribeRequestParams::new(uri_a.clone())).await.expect("unsubscribe from a");
    s.client.subscribe(SubscribeRequestParams::new(uri_b.clone())).await.expect("subscribe to b");
    ok(&s, "add_episode_step", step(&a, 2)).await;
    ok(&s, "add_episode_step", step(&b, 1)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a notification for b").unwrap();
    assert_eq!(got, uri_b, "a is no longer announced");
    assert!(tokio::time::timeout(Duration::from_secs(1), rx.recv()).await.is_err(), "nothing more within 1 s");

    // URIs the server does not serve, and an episode that does not exist.
    let err = s.client.subscribe(SubscribeRequestParams::new("test://watched-resource")).await.expect_err("unknown URI");
    assert!(err.to_string().contains("test://watched-resource"), "the error names the URI: {err}");
    let none = format!("memory://episodes/{}", uuid::Uuid::now_v7());
    let err = s.client.subscribe(SubscribeRequestParams::new(none.clone())).await.expect_err("no such episode");
    assert!(err.to_string().contains(&none), "{err}");
    let err = s.client.unsubscribe(UnsubscribeRequestParams::new("test://watched-resource")).await.expect_err("unknown URI");
    assert!(err.to_string().contains("test://watched-resource"), "{err}");

    // At most 256 subscriptions a session (b is one of them).
    for n in 0..256 {
        let id = ok(&s, "create_episode", new_episode(n + 2)).await["episode_id"].as_str().unwrap().to_string();
        let r = s.client.subscribe(SubscribeRequestParams::new(format!("memory://episodes/{id}"))).await;
        if n < 255 {
            r.expect("within the bound");
        } else {
            let err = r.expect_err("the 257th subscription is refused");
            assert!(err.to_string().contains("256"), "the error gives the bound: {err}");
        }
    }
}
