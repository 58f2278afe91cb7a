//! Embeddings end to end over MCP stdio against the real binary: the local
//! provider by default, Ollama and OpenAI-compatible providers (declared in
//! the config file) against real HTTP servers on loopback, policy-denied destinations (a redirect to
//! another port), the API key never leaving its component, model switches
//! re-embedding everything, restart keeping vectors, failures retried
//! without loss, and search quality on a labelled set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
#[path = "common/fake_http.rs"]
mod fake_http;

use std::time::{Duration, Instant};

use common::{Server, err, ok, spawn, spawn_in, spawn_logged};
use fake_http::{FakeProvider, Mode};
use serde_json::{Value, json};

/// Labelled task descriptions: three topics, four tasks each, sharing
/// meaning more than exact wording.
const TOPICS: [(&str, [&str; 4]); 3] = [
    (
        "auth",
        [
            "Add JWT authentication to the login endpoint",
            "Implement token based authentication for user sign-in",
            "Fix expired session tokens logging users out of the login page",
            "Authenticate API requests with signed JWT tokens",
        ],
    ),
    (
        "charts",
        [
            "Render a bar chart of monthly sales revenue",
            "Plot quarterly revenue as a line chart on the dashboard",
            "Add axis labels and a legend to the sales charts",
            "Draw a pie chart of revenue by region",
        ],
    ),
    (
        "database",
        [
            "Write a database migration adding an index on orders",
            "Speed up the slow SQL query on the orders table",
            "Migrate the orders database schema to add a customer column",
            "Add a database index to fix slow order queries",
        ],
    ),
];

async fn episode(s: &Server, desc: &str, domain: &str) -> String {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": domain, "task_type": "code_generation"})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    ok(s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "edit", "action": "change code", "result": {"type": "success"}})).await;
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
    id
}

/// Records the labelled set; returns (id, topic) pairs.
async fn seed(s: &Server) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (topic, tasks) in TOPICS {
        for t in tasks {
            out.push((episode(s, t, "app").await, topic));
        }
    }
    out
}

/// A config file in `dir` declaring `[embeddings.providers.<name>]` with
/// `body`; returns the `--config` argument.
fn declare(dir: &std::path::Path, tables: &[(&str, String)]) -> String {
    let text: String = tables.iter().map(|(name, body)| format!("[embeddings.providers.{name}]\n{body}\n")).collect();
    let path = dir.join("memory-mcp.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// An Ollama server at `url` offering the fake models.
fn ollama_at(url: &str) -> String {
    format!("kind = \"ollama\"\nbase_url = \"{url}\"\nmodel = \"fake-a\"\nmodels = [\"fake-b\"]")
}

/// Waits until the server has opened its store: over stdio it answers
/// before that, and `health_check` then reports `status: "starting"`.
async fn opened(s: &Server) -> &Server {
    let started = Instant::now();
    while ok(s, "health_check", json!({})).await["status"] == "starting" {
        assert!(started.elapsed() < Duration::from_secs(60), "the store did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s
}

async fn embeddings(s: &Server) -> Value {
    ok(s, "health_check", json!({})).await["embeddings"].clone()
}

/// Waits until `n` episodes are indexed, the patterns learned from them
/// too, with nothing queued and no job running.
async fn embedded(s: &Server, n: u64) -> Value {
    let started = Instant::now();
    loop {
        let h = ok(s, "health_check", json!({})).await;
        let (e, learned) = (&h["embeddings"], h["learning"]["analysis_backlog"] == 0);
        if learned && e["indexed"]["episodes"].as_u64() == Some(n) && e["pending"] == 0 && e["reembedding"].is_null() {
            return e.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "embedding did not finish: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For each topic's query: every related task scores above every
/// unrelated one.
async fn assert_quality(s: &Server, labelled: &[(String, &str)]) {
    let queries = [
        ("auth", "user login authentication with tokens"),
        ("charts", "sales revenue chart"),
        ("database", "slow database query on orders"),
    ];
    for (topic, q) in queries {
        let r = ok(s, "query_semantic_memory", json!({"query": q, "limit": 100, "similarity_threshold": 0.0})).await;
        let results = r["results"].as_array().expect("results");
        let score = |id: &str| {
            results.iter().find(|x| x["episode_id"] == id).and_then(|x| x["similarity"].as_f64()).unwrap_or(-1.0)
        };
        let related: Vec<f64> = labelled.iter().filter(|(_, t)| *t == topic).map(|(id, _)| score(id)).collect();
        let unrelated: Vec<f64> = labelled.iter().filter(|(_, t)| *t != topic).map(|(id, _)| score(id)).collect();
        let worst_related = related.iter().copied().fold(f64::MAX, f64::min);
        let best_unrelated = unrelated.iter().copied().fold(f64::MIN, f64::max);
        assert!(
            worst_related > best_unrelated,
            "{q}: related {related:?} should all beat unrelated {unrelated:?}"
        );
    }
}

#[tokio::test]
async fn local_provider_by_default_searches_by_meaning_and_keeps_vectors_across_restart() {
    let s = spawn(&[]).await;
    let labelled = seed(&s).await;
    let e = embedded(&s, 12).await;
    assert_eq!(e["provider"], "local");
    assert_eq!(e["active_space"]["info"]["dimensions"], 384);
    assert_quality(&s, &labelled).await;

    // The default threshold (0.7) keeps only close matches.
    let r = ok(&s, "query_semantic_memory", json!({"query": "Add JWT authentication to the login endpoint"})).await;
    let results = r["results"].as_array().expect("results");
    assert!(!results.is_empty() && results.iter().all(|x| x["similarity"].as_f64().unwrap_or(0.0) >= 0.7), "{r}");
    assert_eq!(results[0]["episode_id"], labelled[0].0.as_str());
    assert_eq!(r["coverage"]["embedded"], 12);

    // Filters.
    let other = episode(&s, "Add JWT authentication to the admin login", "admin").await;
    embedded(&s, 13).await;
    let r = ok(&s, "query_semantic_memory", json!({"query": "JWT login authentication", "domain": "admin", "similarity_threshold": 0.0})).await;
    let ids: Vec<&str> = r["results"].as_array().expect("results").iter().filter_map(|x| x["episode_id"].as_str()).collect();
    assert_eq!(ids, vec![other.as_str()]);
    let r = ok(&s, "query_semantic_memory", json!({"query": "JWT", "task_type": "debugging", "similarity_threshold": 0.0})).await;
    assert_eq!(r["results"].as_array().map(Vec::len), Some(0));

    // Hybrid ranking in query_memory: a word-less match by meaning is
    // found, and each result shows both parts.
    let r = ok(&s, "query_memory", json!({"query": "sign-in tokens", "limit": 5})).await;
    assert_eq!(r["ranking"], "hybrid", "{r}");
    let first = &r["results"][0];
    assert!(first["semantic"].as_f64().is_some() && first["lexical"].as_f64().is_some(), "{r}");
    let top: Vec<&str> = r["results"].as_array().expect("results").iter().filter_map(|x| x["episode_id"].as_str()).collect();
    let auth: Vec<&str> = labelled.iter().filter(|(_, t)| *t == "auth").map(|(id, _)| id.as_str()).collect();
    assert!(top.iter().take(3).all(|id| auth.contains(id) || *id == other), "{r}");

    // Learned patterns are embedded too, and their ranking blends meaning.
    let e = embeddings(&s).await;
    assert!(e["indexed"]["patterns"].as_u64().is_some_and(|n| n > 0), "{e}");
    let r = ok(&s, "search_patterns", json!({"query": "login authentication", "domain": "app", "min_relevance": 0.0})).await;
    let results = r["results"].as_array().expect("results");
    assert!(results.iter().any(|x| x["parts"]["semantic"].as_f64().is_some()), "{r}");

    // test_embeddings reports the provider.
    let t = ok(&s, "test_embeddings", json!({})).await;
    assert_eq!((t["provider"].as_str(), t["model"].as_str(), t["dimensions"].as_u64()), (Some("local"), Some("hashed-ngrams-v1"), Some(384)));

    // Bad input: clear errors, nothing changes.
    assert!(err(&s, "query_semantic_memory", json!({"query": "x", "limit": 101})).await.contains("limit"));
    assert!(err(&s, "query_semantic_memory", json!({"query": "x", "similarity_threshold": 1.5})).await.contains("similarity_threshold"));
    assert!(err(&s, "query_semantic_memory", json!({"query": ""})).await.contains("query"));
    assert!(err(&s, "configure_embeddings", json!({"provider": "telepathy"})).await.contains("telepathy"));
    // Remote providers are the operator's to declare: none is here.
    assert!(err(&s, "configure_embeddings", json!({"provider": "openai"})).await.contains("openai"));
    assert!(err(&s, "configure_embeddings", json!({"provider": "ollama", "base_url": "http://127.0.0.1:9"})).await.contains("base_url"));
    assert!(err(&s, "configure_embeddings", json!({"provider": "local", "batch_size": 0})).await.contains("batch_size"));

    // Restart: the vectors are there at once and nothing is re-embedded.
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    let s = spawn_in(data_dir, &[]).await;
    let e = embeddings(opened(&s).await).await;
    assert_eq!(e["indexed"]["episodes"], 13, "{e}");
    let e = embedded(&s, 13).await;
    assert_eq!(e["worker"]["embedded"], 0, "re-embedded after restart: {e}");
    assert_quality(&s, &labelled).await;
}

#[tokio::test]
async fn ollama_provider_and_a_model_switch_re_embeds_everything() {
    let fake = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let config = declare(conf.path(), &[("ollama", ollama_at(&fake.url))]);
    let s = spawn(&["--config", &config]).await;
    let labelled = seed(&s).await;
    embedded(&s, 12).await;

    let r = ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-a"})).await;
    // The 12 episodes and the patterns learned from them.
    assert_eq!((r["dimensions"].as_u64(), r["reembedding"].as_bool()), (Some(256), Some(true)), "{r}");
    assert!(r["queued"].as_u64().is_some_and(|n| n > 12), "{r}");
    let e = embedded(&s, 12).await;
    assert_eq!(e["active_space"]["info"]["model"], "fake-a");
    assert!(fake.seen().iter().all(|x| x.path == "/api/embed"));
    // The probe, the 12 episodes, and any learned patterns.
    assert!(fake.texts_for("fake-a") >= 13, "{}", fake.texts_for("fake-a"));
    assert_quality(&s, &labelled).await;
    let t = ok(&s, "test_embeddings", json!({"text": "hello"})).await;
    assert_eq!((t["provider"].as_str(), t["dimensions"].as_u64()), (Some("ollama"), Some(256)));
    assert!(t["latency_ms"].as_f64().is_some());

    // Same model again: settings saved, nothing re-embedded.
    let r = ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-a", "similarity_threshold": 0.5})).await;
    assert_eq!(r["reembedding"], false);

    // Another model with other dimensions: everything is re-embedded into
    // a new index, never mixed with the old.
    let before = fake.texts_for("fake-b");
    let r = ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-b"})).await;
    assert_eq!((r["dimensions"].as_u64(), r["reembedding"].as_bool()), (Some(192), Some(true)), "{r}");
    let e = embedded(&s, 12).await;
    assert_eq!(e["active_space"]["info"]["dimensions"], 192);
    assert!(fake.texts_for("fake-b") - before >= 13);
    assert_quality(&s, &labelled).await;

    // The settings persist across restart.
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    let s = spawn_in(data_dir, &["--config", &config]).await;
    let e = embedded(&s, 12).await;
    assert_eq!((e["provider"].as_str(), e["active_space"]["info"]["model"].as_str()), (Some("ollama"), Some("fake-b")));
    let r = ok(&s, "query_semantic_memory", json!({"query": "sales revenue chart", "similarity_threshold": 0.5})).await;
    assert!(r["results"].as_array().is_some_and(|a| !a.is_empty()), "{r}");
}

#[tokio::test]
async fn openai_key_stays_in_its_component_and_other_destinations_are_denied() {
    const KEY: &str = "sk-test-7f3a9c1e5b2d4f60";
    let fake = FakeProvider::start();
    let elsewhere = FakeProvider::start();
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("stderr.log");
    let data = tempfile::tempdir().expect("data");
    let openai = |env: &str| format!("kind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"{env}\"\nmodel = \"fake-a\"", fake.url);
    let config = declare(dir.path(), &[("openai", openai("TEST_EMBED_KEY")), ("unset", openai("NO_SUCH_VAR_4821"))]);
    let s = spawn_logged(data, &["--config", &config], &[("TEST_EMBED_KEY", KEY)], &log).await;
    let mut outputs = Vec::new();

    let r = s.call("configure_embeddings", json!({"provider": "openai", "model": "fake-a"})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    outputs.push(format!("{r:?}"));
    // The key went to the provider, as a bearer token, and only there.
    assert!(fake.seen().iter().all(|x| x.authorization.as_deref() == Some(&format!("Bearer {KEY}")[..])));
    assert!(fake.seen().iter().all(|x| x.path == "/v1/embeddings"));
    seed(&s).await;
    embedded(&s, 12).await;

    // A redirect to another origin is refused by the host: the other
    // server never hears of it. The error names neither origin (embedding
    // errors reach sandboxed code too); the log names the target.
    fake.set(Mode::Redirect(format!("{}/v1/embeddings", elsewhere.url)));
    let e = err(&s, "test_embeddings", json!({})).await;
    assert!(e.contains("denied"), "{e}");
    assert!(!e.contains(&elsewhere.url.replace("http://", "")) && !e.contains(&fake.url.replace("http://", "")), "{e}");
    outputs.push(e);
    assert!(elsewhere.seen().is_empty(), "the denied origin was contacted");
    // A declared provider whose variable is unset is refused before
    // anything is sent.
    let before = fake.seen().len();
    let e = err(&s, "configure_embeddings", json!({"provider": "unset"})).await;
    assert!(e.contains("NO_SUCH_VAR_4821"), "{e}");
    assert_eq!(fake.seen().len(), before);

    // A provider that echoes the key in its error: the caller gets the
    // status, not the body; the operator's log gets the body, scrubbed.
    fake.set(Mode::EchoKey);
    let e = err(&s, "test_embeddings", json!({})).await;
    assert!(e.contains("401") && !e.contains("Incorrect API key"), "{e}");
    outputs.push(e);
    fake.set(Mode::Ok);
    outputs.push(embeddings(&s).await.to_string());
    outputs.push(format!("{:?}", s.call("get_metrics", json!({})).await));
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("denied"), "the denial is logged");
    assert!(logged.contains(&elsewhere.url.replace("http://", "")), "the log names the denied origin");
    assert!(logged.contains("Incorrect API key provided: Bearer [redacted]"), "the body is logged, scrubbed");
    for o in outputs.iter().chain([&logged]) {
        assert!(!o.contains(KEY) && !o.contains("7f3a9c1e5b2d4f60"), "the key leaked: {o}");
    }
    // Nor is it stored.
    let mut stack = vec![data_dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is stored in {}", path.display());
            }
        }
    }
}

#[tokio::test]
async fn a_failing_provider_errors_within_its_timeout_and_queued_episodes_are_not_lost() {
    let fake = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let config = declare(conf.path(), &[("ollama", ollama_at(&fake.url))]);
    let s = spawn(&["--config", &config]).await;
    ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-a", "timeout_ms": 300, "max_retries": 0})).await;
    embedded(&s, 0).await;

    // Slow: a clear error within the budget.
    fake.set(Mode::Stall(Duration::from_secs(5)));
    let started = Instant::now();
    let e = err(&s, "query_semantic_memory", json!({"query": "login"})).await;
    assert!(e.contains("did not answer within"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());

    // Down: episodes complete, wait in the queue, and words still find them.
    fake.set(Mode::Down);
    let labelled = seed(&s).await;
    let r = ok(&s, "query_memory", json!({"query": "revenue chart"})).await;
    assert_eq!(r["ranking"], "lexical");
    assert!(r["results"].as_array().is_some_and(|a| !a.is_empty()), "{r}");
    let e = err(&s, "test_embeddings", json!({})).await;
    assert!(e.contains("unavailable") && e.contains("503") && !e.contains("model is loading"), "{e}");
    let started = Instant::now();
    loop {
        let e = embeddings(&s).await;
        if e["worker"]["failed_batches"].as_u64().unwrap_or(0) >= 1 {
            // The 12 episodes (and the patterns learned from them).
            assert!(e["pending"].as_u64().is_some_and(|n| n >= 12), "{e}");
            assert!(e["worker"]["failed_batches"].as_u64().is_some_and(|n| n <= 3), "retries are backed off: {e}");
            assert!(e["worker"]["last_error"].as_str().is_some_and(|x| x.contains("503")), "{e}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Back up: the queue drains with nothing lost.
    fake.set(Mode::Ok);
    embedded(&s, 12).await;
    assert_quality(&s, &labelled).await;
}
