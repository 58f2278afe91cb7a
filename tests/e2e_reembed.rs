//! Re-embedding without a gap, end to end over MCP stdio against the real
//! binary. The new space comes from an Ollama provider the operator
//! declared, served by a real HTTP server on loopback that answers slowly
//! on demand, so the job is observable: while it runs, queries are still
//! answered promptly from the old space's complete vectors, even for an
//! episode not yet re-embedded, and `health_check` shows the serving space,
//! the target and the progress; a restart resumes the job, still serving
//! the old space; once every item is re-embedded the new space serves and
//! the old space's vectors are gone from disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
#[path = "common/fake_http.rs"]
mod fake_http;

use std::time::{Duration, Instant};

use common::{Server, ok, spawn, spawn_in};
use fake_http::{FakeProvider, Mode};
use serde_json::{Value, json};

/// How long the provider takes to answer while the job is observed.
const SLOW: Duration = Duration::from_secs(3);
/// A generous bound for a query answered while the job runs: queries use
/// the old space's provider and come before the job's batches, so they
/// never wait for a (slow) batch.
const PROMPT: Duration = Duration::from_secs(2);
/// The episode looked for; recorded last, so it is re-embedded last.
const NEEDLE: &str = "Rotate the expired TLS certificate on the billing gateway";

async fn episode(s: &Server, desc: &str) -> String {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": "ops", "task_type": "debugging"})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    ok(s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "shell", "action": "run the fix", "result": {"type": "success"}})).await;
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
    id
}

async fn embeddings(s: &Server) -> Value {
    ok(s, "health_check", json!({})).await["embeddings"].clone()
}

/// Waits until `check` holds of the embeddings health.
async fn until(s: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let e = embeddings(s).await;
        if check(&e) {
            return e;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{what}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Queries the needle (exact words and a paraphrase) through every tool
/// that uses embeddings, each answered within [`PROMPT`]; returns the
/// model `query_semantic_memory` reports.
async fn query_promptly(s: &Server, needle: &str) -> Value {
    let timed = async |tool: &str, args: Value| {
        let started = Instant::now();
        let r = ok(s, tool, args).await;
        let took = started.elapsed();
        assert!(took < PROMPT, "{tool} took {took:?} while the job ran");
        r
    };
    let r = timed("query_semantic_memory", json!({"query": NEEDLE, "limit": 3})).await;
    assert_eq!(r["results"][0]["episode_id"], needle, "{r}");
    assert!(r["results"][0]["similarity"].as_f64().is_some_and(|x| x > 0.8), "{r}");
    let r = timed("query_semantic_memory", json!({"query": "renew the TLS certificate of the billing gateway", "limit": 3, "similarity_threshold": 0.0})).await;
    assert_eq!(r["results"][0]["episode_id"], needle, "{r}");
    let model = r["model"].clone();
    let r = timed("query_memory", json!({"query": "expired certificate billing gateway", "limit": 3})).await;
    assert_eq!((r["ranking"].as_str(), r["results"][0]["episode_id"].as_str()), (Some("hybrid"), Some(needle)), "{r}");
    timed("search_patterns", json!({"query": "certificate rotation", "domain": "ops", "min_relevance": 0.0})).await;
    timed("recommend_patterns", json!({"task_description": NEEDLE, "domain": "ops"})).await;
    model
}

/// Every stored vector, by keyspace: (space tag, dimensions) of each.
/// (The server has been stopped: its lock is released once it exits.)
async fn stored_vectors(data: &std::path::Path) -> (Vec<(u64, usize)>, Vec<(u64, usize)>) {
    let started = Instant::now();
    let db = loop {
        match fjall::Database::builder(data.join("episodes.fjall")).open() {
            Ok(db) => break db,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "open the store: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let read = |name: &str| -> Vec<(u64, usize)> {
        let ks = db.keyspace(name, fjall::KeyspaceCreateOptions::default).expect("keyspace");
        ks.iter()
            .map(|kv| {
                let (_, v) = kv.into_inner().expect("entry");
                (u64::from_be_bytes(v[..8].try_into().expect("tag")), (v.len() - 8) / 4)
            })
            .collect()
    };
    (read("vectors"), read("vectors_next"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_keep_the_old_space_until_the_new_one_is_complete() {
    let fake = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let config_path = conf.path().join("memory-mcp.toml");
    let body = format!("[embeddings.providers.ollama]\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"fake-a\"\n", fake.url);
    std::fs::write(&config_path, body).expect("config");
    let config = config_path.display().to_string();
    let s = spawn(&["--config", &config]).await;
    let topics = ["database index", "login form", "chart legend", "CSV export", "cache eviction", "retry policy"];
    for i in 0..18 {
        episode(&s, &format!("Fix the {} bug number {i} in the web app", topics[i % topics.len()])).await;
    }
    let needle = episode(&s, NEEDLE).await;
    let e = until(&s, "embedded with the local provider", |e| {
        e["indexed"]["episodes"] == 19 && e["pending"] == 0 && e["reembedding"].is_null()
    })
    .await;
    assert_eq!(e["active_space"]["info"]["provider"], "local", "{e}");

    // A slow provider: every answer takes SLOW.
    fake.set(Mode::Stall(SLOW));
    let r = ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-a", "batch_size": 4})).await;
    assert_eq!(r["reembedding"], true, "{r}");
    let queued = r["queued"].as_u64().expect("queued");
    assert!(queued >= 19, "{r}");

    // (1) Mid-job: the old space serves, the needle (not yet re-embedded)
    // is found by meaning, and health_check says who serves and how far.
    let e = embeddings(&s).await;
    let job = &e["reembedding"];
    assert_eq!(job["serving"]["info"]["provider"], "local", "{e}");
    assert_eq!((job["target"]["info"]["provider"].as_str(), job["target"]["info"]["model"].as_str()), (Some("ollama"), Some("fake-a")), "{e}");
    assert_eq!(job["total"].as_u64(), Some(queued), "{e}");
    assert!(job["done"].as_u64().is_some_and(|d| d < queued), "{e}");
    assert_eq!(e["active_space"]["info"]["provider"], "local", "{e}");
    assert_eq!(e["indexed"]["episodes"], 19, "the old space stays complete: {e}");
    let model = query_promptly(&s, &needle).await;
    assert_eq!(model["provider"], "local", "served from the old space");
    let sent: Vec<String> = fake.seen().iter().filter_map(|x| x.body["input"].as_array().cloned()).flatten().filter_map(|t| t.as_str().map(str::to_string)).collect();
    assert!(!sent.iter().any(|t| t.contains("TLS certificate")), "the needle was already re-embedded; the test shows nothing");
    assert!(sent.len() < queued as usize, "the job should still be running");

    // A restart mid-job resumes it, still serving the old space.
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    let s = spawn_in(data_dir, &["--config", &config]).await;
    let e = until(&s, "the job resumes", |e| e["reembedding"]["target"]["state"]["status"] == "ok").await;
    assert_eq!(e["reembedding"]["serving"]["info"]["provider"], "local", "{e}");
    assert_eq!(e["reembedding"]["total"].as_u64(), Some(queued), "the same job: {e}");
    let model = query_promptly(&s, &needle).await;
    assert_eq!(model["provider"], "local", "served from the old space after the restart");

    // The throttle gave way to those queries: the job's batch that ran
    // while they came counts as yielding and was followed by a pause as
    // long as itself, so while queries came the job was busy at most its
    // duty cycle (0.5) of the time; without queries it runs at full speed.
    let e = until(&s, "a job batch that ran while queries came", |e| e["reembedding"]["throttle"]["yielding_batches"].as_u64().is_some_and(|n| n >= 1)).await;
    let throttle = &e["reembedding"]["throttle"];
    let duty = throttle["measured_duty_while_queries"].as_f64().expect("measured duty");
    assert!(duty > 0.0 && duty <= throttle["duty_cycle_while_queries"].as_f64().unwrap_or(0.0) + 0.01, "{throttle}");
    assert!(throttle["paused_ms"].as_f64().is_some_and(|p| p > 0.0), "{throttle}");
    assert_eq!(throttle["small_batch"].as_u64(), Some(4), "{throttle}");

    // (2) The provider speeds up; once every item is re-embedded the new
    // space serves queries at once.
    fake.set(Mode::Ok);
    let e = until(&s, "the job finishes", |e| e["reembedding"].is_null() && !e["tidying"].as_bool().unwrap_or(true)).await;
    assert_eq!((e["active_space"]["info"]["model"].as_str(), e["indexed"]["episodes"].as_u64()), (Some("fake-a"), Some(19)), "{e}");
    let r = ok(&s, "query_semantic_memory", json!({"query": NEEDLE, "limit": 3})).await;
    assert_eq!((r["results"][0]["episode_id"].as_str(), r["model"]["model"].as_str()), (Some(needle.as_str()), Some("fake-a")), "{r}");
    let r = ok(&s, "query_memory", json!({"query": "expired certificate billing gateway", "limit": 3})).await;
    assert_eq!((r["ranking"].as_str(), r["results"][0]["episode_id"].as_str()), (Some("hybrid"), Some(needle.as_str())), "{r}");

    // The old space's vectors are gone: one space, fake-a's 256
    // dimensions, on disk.
    let Server { client, data_dir } = s;
    client.cancel().await.expect("stop");
    let (vectors, next) = stored_vectors(data_dir.path()).await;
    assert!(next.is_empty(), "vectors_next holds {} vectors", next.len());
    assert!(vectors.len() >= 19, "{}", vectors.len());
    let space = vectors[0].0;
    assert!(vectors.iter().all(|v| *v == (space, 256)), "more than one space on disk: {vectors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_switch_during_a_job_is_won_by_the_newest_and_going_back_ends_it() {
    let fake = FakeProvider::start();
    let conf = tempfile::tempdir().expect("conf");
    let config_path = conf.path().join("memory-mcp.toml");
    let body = format!(
        "[embeddings.providers.ollama]\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"fake-a\"\nmodels = [\"fake-b\"]\n",
        fake.url
    );
    std::fs::write(&config_path, body).expect("config");
    let config = config_path.display().to_string();
    let s = spawn(&["--config", &config]).await;
    for i in 0..8 {
        episode(&s, &format!("Tune the cache eviction policy, attempt {i}")).await;
    }
    let needle = episode(&s, NEEDLE).await;
    until(&s, "embedded", |e| e["indexed"]["episodes"] == 9 && e["pending"] == 0 && e["reembedding"].is_null()).await;

    fake.set(Mode::Stall(SLOW));
    ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-a", "batch_size": 2})).await;
    // The newest target wins; the local space still serves.
    ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-b", "batch_size": 2})).await;
    let e = embeddings(&s).await;
    assert_eq!(e["reembedding"]["target"]["info"]["model"], "fake-b", "{e}");
    assert_eq!(e["active_space"]["info"]["provider"], "local", "{e}");
    assert_eq!(query_promptly(&s, &needle).await["provider"], "local");
    // Choosing the serving space again ends the job.
    ok(&s, "configure_embeddings", json!({"provider": "local"})).await;
    let e = until(&s, "the job ends", |e| e["reembedding"].is_null() && !e["tidying"].as_bool().unwrap_or(true)).await;
    assert_eq!((e["active_space"]["info"]["provider"].as_str(), e["indexed"]["episodes"].as_u64()), (Some("local"), Some(9)), "{e}");
    fake.set(Mode::Ok);
    // And a switch run to its end serves fake-b.
    let r = ok(&s, "configure_embeddings", json!({"provider": "ollama", "model": "fake-b", "wait": true})).await;
    assert_eq!(r["remaining"], 0, "{r}");
    let e = embeddings(&s).await;
    assert_eq!((e["active_space"]["info"]["model"].as_str(), e["indexed"]["episodes"].as_u64()), (Some("fake-b"), Some(9)), "{e}");
    let r = ok(&s, "query_semantic_memory", json!({"query": NEEDLE, "limit": 1})).await;
    assert_eq!(r["results"][0]["episode_id"], needle.as_str(), "{r}");
}
