//! The operator chooses secrets and destinations; an agent only chooses
//! among them (issue 14, finding 3). End to end over MCP stdio against the
//! real binary, with loopback HTTP servers standing in for providers:
//!
//! - sandboxed code, even under `allow = ["memory.*"]`, cannot reach the
//!   tools that change configuration or persist code: nothing is sent,
//!   persisted or written, and they are not in the sandbox's catalog;
//! - over MCP, `configure_embeddings` picks a provider the config file
//!   declares, and cannot name another origin or environment variable;
//! - a data dir whose persisted settings the config does not declare (as
//!   today's main writes them) falls back to the local provider without a
//!   single request to the persisted origin, and says so in `health_check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
#[path = "common/fake_http.rs"]
mod fake_http;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, err, ok, spawn_logged};
use fake_http::{FakeProvider, Mode};
use serde_json::{Value, json};
use tempfile::TempDir;

const KEY: &str = "sk-e2e-secrets-5c1d7a9e";

/// Writes `text` as the config file beside (not in) `data`, returning its
/// path as an argument.
fn config_file(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("memory-mcp.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// A `[embeddings.providers.<name>]` table for an OpenAI-compatible
/// server at `url` whose key is in `env`.
fn declared(name: &str, url: &str, env: &str, models: &[&str]) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[embeddings.providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key_env = \"{env}\"\nmodel = \"fake-a\"\nmodels = [{}]\n",
        models.join(", ")
    )
}

async fn serve(data: TempDir, config: &str, log: &Path) -> Server {
    spawn_logged(data, &["--config", config], &[("E2E_SECRET_KEY", KEY), ("SOME_VAR", KEY)], log).await
}

async fn restart(s: Server, config: &str, log: &Path) -> Server {
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    tokio::time::sleep(Duration::from_millis(200)).await;
    serve(data_dir, config, log).await
}

async fn embeddings(s: &Server) -> Value {
    ok(s, "health_check", json!({})).await["embeddings"].clone()
}

/// Waits until the provider has loaded (or failed) and `n` episodes are
/// indexed with nothing pending.
/// A server whose code may call `memory.*`, with the provider `work`
/// declared at `url` (key variable `E2E_SECRET_KEY`); its config dir,
/// returned to be kept, holds the log at `stderr.log`.
async fn serve_work_for_code(url: &str) -> (Server, TempDir) {
    let conf = tempfile::tempdir().expect("conf");
    let text = format!("[sandbox.tools]\nallow = [\"memory.*\"]\n\n{}", declared("work", url, "E2E_SECRET_KEY", &[]));
    let config = config_file(&conf, &text);
    let s = serve(tempfile::tempdir().expect("data"), &config, &conf.path().join("stderr.log")).await;
    (s, conf)
}

async fn settled(s: &Server, n: u64) -> Value {
    let started = Instant::now();
    loop {
        let e = embeddings(s).await;
        if e["state"]["status"] != "loading" && e["indexed"]["episodes"].as_u64() == Some(n) && e["pending"] == 0 {
            return e;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "embeddings did not settle: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn episode(s: &Server, desc: &str) {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": "app", "task_type": "code_generation"})).await;
    let id = r["episode_id"].clone();
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { out.push(path) }
        }
    }
    out
}

#[tokio::test]
async fn sandboxed_code_cannot_configure_embeddings_or_persist_code_even_under_memory_glob() {
    let fake = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let config = config_file(&conf, "[sandbox.tools]\nallow = [\"memory.*\"]\n");
    let log = conf.path().join("stderr.log");
    let s = serve(tempfile::tempdir().expect("data"), &config, &log).await;
    let plugins_before = files(&s.data_dir.path().join("plugins"));

    // The call that exfiltrated the key on today's main, and the others that
    // change configuration or persist code.
    let ran = s
        .exec_with(json!({
            "code": r#"
            const calls = [
              ["configure_embeddings", { provider: "openai", base_url: context.input.url, api_key_env: "SOME_VAR" }],
              ["configure_embeddings", { provider: "local" }],
              ["test_embeddings", {}],
              ["save_plugin", { execution_id: "0190f3a0-0000-7000-8000-000000000000", name: "stolen", description: "d" }],
              ["remove_plugin", { name: "stolen" }],
              ["execute_agent_code", { code: "return 1" }],
            ];
            const out = [];
            for (const [name, args] of calls) {
              try { await tools.memory[name](args); out.push({ name, error: null }) }
              catch (e) { out.push({ name, error: e.name }) }
            }
            const listed = (await tools.memory.search_tools({ query: "", limit: 100 })).tools.map(t => t.name);
            return { out, listed };
            "#,
            "context": { "input": { "url": fake.url } },
        }))
        .await;
    assert_eq!(ran["status"], "success", "{ran}");
    for call in ran["output"]["out"].as_array().expect("out") {
        let e = call["error"].as_str();
        assert!(matches!(e, Some("ToolUnavailable" | "SecurityViolation")), "{call} reached its handler");
    }
    // Not in the sandbox's catalog either.
    let operator_only = ["configure_embeddings", "test_embeddings", "save_plugin", "remove_plugin", "execute_agent_code"];
    let listed = ran["output"]["listed"].as_array().expect("listed");
    assert!(listed.iter().any(|n| n == "memory.query_semantic_memory"), "{listed:?}");
    for listed in listed {
        let name = listed.as_str().unwrap_or_default();
        assert!(!operator_only.iter().any(|t| name == format!("memory.{t}")), "{name} is offered to code");
    }
    let searched = ok(&s, "search_tools", json!({"query": "", "limit": 100})).await;
    let names: Vec<&str> = searched["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.iter().all(|n| !operator_only.iter().any(|t| *n == format!("memory.{t}"))), "{names:?}");
    assert!(names.contains(&"memory.query_semantic_memory"), "{names:?}");
    let described = s.call("describe_tools", json!({"names": ["memory.configure_embeddings"]})).await;
    assert!(!format!("{:?}", described.content).contains("api_key_env"), "{described:?}");
    let resources = s.client.list_all_resources().await.expect("resources");
    assert!(resources.iter().all(|r| operator_only.iter().all(|t| !r.uri.contains(&format!("/{t}.")))), "{resources:?}");

    // Nothing was sent, nothing was written.
    assert!(fake.seen().is_empty(), "the provider was contacted: {:?}", fake.seen());
    assert_eq!(files(&s.data_dir.path().join("plugins")), plugins_before, "a plugin was written");
    let records = ok(&s, "get_tool_audit", json!({"execution_id": ran["execution_id"]})).await;
    let admitted: Vec<&Value> =
        records["records"].as_array().expect("records").iter().filter(|r| r["outcome"] == "ok" && r["tool"] != "search_tools").collect();
    assert!(admitted.is_empty(), "{admitted:?}");

    // And nothing persisted: after a restart the local provider serves.
    let s = restart(s, &config, &log).await;
    let e = settled(&s, 0).await;
    assert_eq!((e["provider"].as_str(), e["declared_as"].as_str()), (Some("local"), Some("local")), "{e}");
    assert!(e["refused_settings"].is_null(), "{e}");
    let t = ok(&s, "test_embeddings", json!({})).await;
    assert_eq!(t["provider"], "local");
    assert!(fake.seen().is_empty());
    let Server { client, .. } = s;
    client.cancel().await.expect("stop");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.contains(KEY), "the key was logged");
}

#[tokio::test]
async fn over_mcp_only_declared_providers_origins_and_keys_are_used() {
    let fake = FakeProvider::start();
    let elsewhere = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let with = config_file(&conf, &declared("work", &fake.url, "E2E_SECRET_KEY", &["fake-b"]));
    let log = conf.path().join("stderr.log");
    let s = serve(tempfile::tempdir().expect("data"), &with, &log).await;
    settled(&s, 0).await;
    let e = embeddings(&s).await;
    assert_eq!(e["available"], json!(["local", "local-minilm", "work"]), "{e}");

    // Anything not declared is refused before a request is made.
    for refused in [
        json!({"provider": "openai"}),
        json!({"provider": "openai", "base_url": elsewhere.url, "api_key_env": "SOME_VAR"}),
        json!({"provider": "work", "base_url": elsewhere.url}),
        json!({"provider": "work", "api_key_env": "SOME_VAR"}),
        json!({"provider": "work", "model": "fake-c"}),
        json!({"provider": "work", "batch_size": 0}),
        json!({"provider": "work", "timeout_ms": 100_000_000}),
        json!({"provider": "work", "max_retries": 1000}),
        json!({"provider": "work", "dimensions": 1_000_000}),
    ] {
        err(&s, "configure_embeddings", refused).await;
    }
    assert!(fake.seen().is_empty() && elsewhere.seen().is_empty(), "a refused configuration was tried");
    assert_eq!(embeddings(&s).await["provider"], "local");

    // The declared provider works, with the key from the declared variable.
    let r = ok(&s, "configure_embeddings", json!({"provider": "work"})).await;
    assert_eq!((r["model"].as_str(), r["dimensions"].as_u64()), (Some("fake-a"), Some(256)), "{r}");
    let r = ok(&s, "configure_embeddings", json!({"provider": "work", "model": "fake-b", "timeout_ms": 2000})).await;
    assert_eq!(r["dimensions"], 192, "{r}");
    episode(&s, "Add JWT authentication to the login endpoint").await;
    let e = settled(&s, 1).await;
    assert_eq!((e["declared_as"].as_str(), e["active_space"]["info"]["model"].as_str()), (Some("work"), Some("fake-b")), "{e}");
    let seen = fake.seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|x| x.authorization.as_deref() == Some(&format!("Bearer {KEY}")[..])), "{seen:?}");
    assert!(elsewhere.seen().is_empty());

    // Errors a caller sees carry the status, not the provider's body.
    fake.set(Mode::EchoKey);
    let e = err(&s, "test_embeddings", json!({})).await;
    assert!(e.contains("401") && !e.contains("Incorrect API key") && !e.contains(KEY), "{e}");
    let q = err(&s, "query_semantic_memory", json!({"query": "login"})).await;
    assert!(!q.contains("Incorrect API key") && !q.contains(KEY), "{q}");
    fake.set(Mode::Ok);

    // The operator withdraws the declaration: the persisted choice is
    // refused at the next start, and the provider hears nothing more.
    let without = config_file(&conf, "");
    let s = restart(s, &without, &log).await;
    let before = fake.seen().len();
    let e = settled(&s, 1).await;
    assert_eq!(e["provider"], "local", "{e}");
    assert_eq!(e["refused_settings"]["provider"].as_str(), Some("openai"), "{e}");
    assert!(!e.to_string().contains(fake.url.as_str()), "health_check shows the provider's origin: {e}");
    episode(&s, "Plot quarterly revenue as a line chart").await;
    settled(&s, 2).await;
    assert_eq!(fake.seen().len(), before, "the withdrawn provider was contacted");

    // Declared again, the persisted choice is admitted again.
    std::fs::write(&with, declared("work", &fake.url, "E2E_SECRET_KEY", &["fake-b"])).expect("config");
    let s = restart(s, &with, &log).await;
    let e = settled(&s, 2).await;
    assert!(e["refused_settings"].is_null(), "{e}");
    assert_eq!((e["declared_as"].as_str(), e["active_space"]["info"]["model"].as_str()), (Some("work"), Some("fake-b")), "{e}");
    assert!(fake.seen().len() > before);
    let Server { client, .. } = s;
    client.cancel().await.expect("stop");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.contains(KEY), "the key was logged");
}

/// Review finding: `health_check`, which sandboxed code may call, showed
/// the declared provider's base URL and key variable. It names the
/// provider and model only, from code and over MCP alike, even in the
/// errors it relays.
#[tokio::test]
async fn health_check_names_the_provider_but_not_its_origin_or_key_variable() {
    let fake = FakeProvider::start();
    let (s, _conf) = serve_work_for_code(&fake.url).await;
    ok(&s, "configure_embeddings", json!({"provider": "work"})).await;
    episode(&s, "Add JWT authentication to the login endpoint").await;
    settled(&s, 1).await;
    // A provider that redirects elsewhere is denied, and the denial is the
    // worker's last error.
    let elsewhere = FakeProvider::start();
    fake.set(Mode::Redirect(format!("{}/v1/embeddings", elsewhere.url)));
    episode(&s, "Plot quarterly revenue as a line chart").await;
    let started = Instant::now();
    while embeddings(&s).await["worker"]["last_error"].is_null() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let over_mcp = ok(&s, "health_check", json!({})).await;
    let ran = ok(&s, "execute_agent_code", json!({"code": "return await tools.memory.health_check({})"})).await;
    let from_code = &ran["output"];
    assert!(from_code["embeddings"].is_object(), "{ran}");
    let authority = fake.url.split("://").nth(1).unwrap_or(&fake.url).trim_end_matches('/').to_string();
    for (who, health) in [("over MCP", &over_mcp), ("from code", from_code)] {
        let e = &health["embeddings"];
        assert_eq!((e["provider"].as_str(), e["declared_as"].as_str()), (Some("openai"), Some("work")), "{who}: {e}");
        assert_eq!(e["active_space"]["info"]["model"], "fake-a", "{who}: {e}");
        let text = health.to_string();
        assert!(!text.contains(&authority), "{who}: the provider's origin is shown: {text}");
        assert!(!text.contains("E2E_SECRET_KEY") && !text.contains(KEY), "{who}: the key variable is shown: {text}");
    }
    fake.set(Mode::Ok);
    let Server { client, .. } = s;
    client.cancel().await.expect("stop");
}

/// The settings exactly as today's main persists them after
/// `configure_embeddings({provider: "openai", base_url, api_key_env})`:
/// keyspace `embedding`, key `settings`, `EmbeddingSettings` as JSON, and
/// the space it switched to under `active`.
fn persist_as_main_did(data: &Path, base_url: &str, api_key_env: &str) {
    let db = fjall::Database::builder(data.join("episodes.fjall")).open().expect("open the data dir");
    let meta = db.keyspace("embedding", fjall::KeyspaceCreateOptions::default).expect("keyspace");
    let settings = format!(
        r#"{{"version":1,"provider":"openai","model":null,"base_url":"{base_url}","api_key_env":"{api_key_env}","dimensions":null,"similarity_threshold":0.7,"batch_size":256,"timeout_ms":10000,"max_retries":2}}"#
    );
    meta.insert("settings", settings.as_bytes()).expect("settings");
    let active = r#"{"space":"0123456789abcdef","info":{"provider":"openai","model":"text-embedding-3-small","dimensions":256,"max_batch":2048}}"#;
    meta.insert("active", active.as_bytes()).expect("active");
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

#[tokio::test]
async fn a_data_dir_with_undeclared_persisted_settings_falls_back_without_contacting_them() {
    let fake = FakeProvider::start();
    let data = tempfile::tempdir().expect("data");
    persist_as_main_did(data.path(), &fake.url, "SOME_VAR");
    let conf = tempfile::tempdir().expect("conf");
    // A declaration of the same origin with another key variable does not
    // cover it either.
    let config = config_file(&conf, &declared("work", &fake.url, "E2E_SECRET_KEY", &[]));
    let log = conf.path().join("stderr.log");
    let s = serve(data, &config, &log).await;
    episode(&s, "Write a database migration adding an index on orders").await;
    let e = settled(&s, 1).await;
    assert_eq!((e["provider"].as_str(), e["state"]["status"].as_str()), (Some("local"), Some("ok")), "{e}");
    assert_eq!(e["active_space"]["info"]["provider"], "local", "{e}");
    let refused = &e["refused_settings"];
    assert_eq!((refused["provider"].as_str(), refused["fallback"].as_str()), (Some("openai"), Some("local")), "{e}");
    // Where it pointed and its key variable are in the log, not in health_check.
    assert!(!e.to_string().contains(fake.url.as_str()) && !e.to_string().contains("SOME_VAR"), "{e}");
    assert!(refused["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
    let t = ok(&s, "test_embeddings", json!({})).await;
    assert_eq!(t["provider"], "local");
    let q = ok(&s, "query_semantic_memory", json!({"query": "database index", "similarity_threshold": 0.0})).await;
    assert_eq!(q["results"].as_array().map(Vec::len), Some(1), "{q}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.seen().is_empty(), "the persisted origin was contacted: {:?}", fake.seen());
    let Server { client, .. } = s;
    client.cancel().await.expect("stop");
    let logged = std::fs::read_to_string(&log).expect("log");
    let warned: Vec<&str> = logged.lines().filter(|l| l.contains("WARN") && l.contains("SOME_VAR")).collect();
    assert_eq!(warned.len(), 1, "logged once, as a warning: {logged}");
    assert!(!logged.contains(KEY), "the key was logged");
}

/// Outside review of issue 14: the provider's errors reach sandboxed code
/// through `query_semantic_memory`. A provider that redirected elsewhere
/// made that error name the granted origin and the redirect's target, a
/// string the provider chooses: a channel into the sandbox. What code sees
/// names neither (the log does).
#[tokio::test]
async fn embedding_errors_that_code_sees_name_no_origin() {
    let fake = FakeProvider::start();
    let elsewhere = FakeProvider::start();
    let (s, conf) = serve_work_for_code(&fake.url).await;
    let log = conf.path().join("stderr.log");
    ok(&s, "configure_embeddings", json!({"provider": "work"})).await;
    fake.set(Mode::Redirect(format!("{}/v1/embeddings", elsewhere.url)));
    let authority = |url: &str| url.split("://").nth(1).unwrap_or(url).trim_end_matches('/').to_string();
    for query in ["quarterly revenue line chart", "login endpoint tokens"] {
        let ran = ok(
            &s,
            "execute_agent_code",
            json!({"code": "try { await tools.memory.query_semantic_memory({query: context.input.q}); return 'answered' } catch (e) { return e.name + ': ' + e.message }", "context": {"input": {"q": query}}}),
        )
        .await;
        let seen = ran["output"].as_str().unwrap_or_default().to_string();
        assert!(seen.starts_with("ToolError"), "the provider's failure reached code as a tool error: {ran}");
        for url in [&fake.url, &elsewhere.url] {
            assert!(!seen.contains(&authority(url)), "code saw an origin: {seen}");
        }
    }
    assert!(elsewhere.seen().is_empty(), "the redirect was followed");
    fake.set(Mode::Ok);
    let Server { client, .. } = s;
    client.cancel().await.expect("stop");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains(&authority(&elsewhere.url)), "the log names where the redirect went");
}
