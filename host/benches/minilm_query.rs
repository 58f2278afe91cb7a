//! `query_memory` with the all-MiniLM-L6-v2 model on, against the hashed
//! embedder (`local`), at 10k and 100k stored episodes, through the real
//! server in-process (built by `App::build`, one rmcp client over
//! `tokio::io::duplex`): the hybrid path end to end (BM25 candidates, the
//! query's embedding, the vector index, the scorer component, the headers).
//! Then the time the real embedding worker takes to embed a store's
//! episodes with the model from scratch (the re-embedding job).
//!
//! Embedding 100k episodes with the model inside the component (≈ 50
//! texts/s on this machine) would take over half an hour, so the stores'
//! vectors are written before the server opens them, as the worker would
//! have stored them: `POOL` distinct episode headers (default 2,000) are
//! embedded through the component (or the hashed component), and episode
//! `i` is a copy of header `i % POOL` (its description, domain and tags)
//! with that header's vector. So every vector is the model's real output
//! for the text the worker embeds, but each one is shared by N / POOL
//! episodes. Both providers get the same episodes; only the vectors (and
//! the space) differ.
//!
//! Queries: 200 texts never seen before (cold: the model runs for each),
//! then the same 200 again (repeated: the query-vector cache answers).
//! The artifact cache is warmed first (`memory_mcp::warm`, as `memory-mcp
//! warm` does): on a fresh cache the first server would compile the JS
//! runtime, the TypeScript stripper and the plugin templates in the
//! background while its queries are timed.
//!
//! Env: `MINILM_DIR` (an installed model directory, required),
//! `BENCH_MINILM_SIZES` (default `10000,100000`), `BENCH_MINILM_POOL`
//! (default 2000), `BENCH_MINILM_REEMBED` (episodes for the re-embedding
//! run, default 10000; 0 skips it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fjall::{KeyspaceCreateOptions, PersistMode};
use memory_mcp::app::App;
use memory_mcp::config::Settings;
use memory_mcp::embeddings::{Active, Embedder, EmbeddingSettings, ProviderKind, encode_vector};
use memory_mcp::memory::{
    EPISODE_ITEM, EpisodeStore, NewEpisode, NewStep, Outcome, OutcomeType, StepResult, StepStatus, StoreOptions, TaskContext,
    TaskType, item_key,
};
use memory_mcp::sandbox::{Profile, ToolPolicy};
use memory_mcp::wasm::ArtifactCache;
use rmcp::model::CallToolRequestParams;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::{Value, json};

#[path = "shared/lcg.rs"]
mod lcg;
use lcg::Lcg;

const VERBS: [&str; 12] = ["add", "fix", "refactor", "test", "document", "migrate", "optimise", "remove", "deploy", "debug", "secure", "cache"];
const OBJECTS: [&str; 20] = [
    "login endpoint", "payment webhook", "search index", "order table", "billing report", "session cache",
    "config parser", "job scheduler", "api gateway", "ledger export", "user profile page", "inventory sync",
    "image resizer", "email queue", "feature flags", "rate limiter", "audit log", "csv importer", "graphql schema",
    "pdf renderer",
];
const QUALIFIERS: [&str; 16] = [
    "for the mobile app", "in the admin panel", "with retries", "behind a feature flag", "for large tenants",
    "after the outage", "using postgres", "with unit tests", "in rust", "for the eu region", "without downtime",
    "under load", "with tracing", "on kubernetes", "with pagination", "for compliance",
];
const DOMAINS: [&str; 8] = ["web-api", "data", "infra", "mobile", "cli", "security", "frontend", "db"];
/// Query paraphrases: other words for the same kinds of work.
const ASKS: [&str; 10] = [
    "why does", "how did we speed up", "make robust the", "who broke the", "clean up the", "harden the",
    "move the", "speed up the", "write docs for the", "stop errors in the",
];
const QUERIES: usize = 200;
const HEALTH_WAIT: Duration = Duration::from_secs(1800);

/// One pooled episode header: what the worker embeds for each copy.
struct Header {
    description: String,
    domain: String,
    tag: String,
}

fn pool(n: usize) -> Vec<Header> {
    let mut seen = std::collections::HashSet::new();
    let mut r = Lcg(11);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let d = format!("{} the {} {}", r.pick(&VERBS), r.pick(&OBJECTS), r.pick(&QUALIFIERS));
        let d = if seen.contains(&d) { format!("{d} (ticket {})", r.next() % 10_000) } else { d };
        if seen.insert(d.clone()) {
            out.push(Header { description: d, domain: r.pick(&DOMAINS).to_string(), tag: r.pick(&OBJECTS).replace(' ', "-") });
        }
    }
    out
}

fn new_episode(h: &Header) -> NewEpisode {
    NewEpisode {
        task_description: h.description.clone(),
        domain: h.domain.clone(),
        task_type: TaskType::ALL[h.description.len() % 6],
        context: TaskContext { language: Some("rust".into()), tags: vec![h.tag.clone()], ..Default::default() },
        metadata: BTreeMap::new(),
    }
}

fn new_step(n: u32, r: &mut Lcg) -> NewStep {
    let ok = !r.next().is_multiple_of(5);
    NewStep {
        step_number: n,
        timestamp: None,
        tool: ["cargo", "editor", "grep", "git"][r.next() as usize % 4].to_string(),
        action: format!("{} {}", r.pick(&VERBS), r.pick(&OBJECTS)),
        parameters: Default::default(),
        result: StepResult {
            status: if ok { StepStatus::Success } else { StepStatus::Error },
            output: ok.then(|| format!("{} passed", r.next() % 50)),
            message: (!ok).then(|| format!("{} failed", r.pick(&OBJECTS))),
        },
        latency_ms: r.next() % 3000,
        tokens_used: None,
    }
}

fn outcome() -> Outcome {
    Outcome { outcome_type: OutcomeType::Success, verdict: "done".into(), artifacts: vec![], completed: vec!["a".into()], failed: vec![], reason: None, error_details: None }
}

/// The texts the embedding worker embeds for episodes with these headers
/// (`memory::header_text`, read back from a store holding one
/// episode per header).
fn header_texts(dir: &Path, pool: &[Header]) -> Vec<String> {
    let ids = build_store(dir, pool, pool.len());
    let store = EpisodeStore::open_with(dir, StoreOptions { sync_on_complete: false }).expect("open");
    ids.iter().map(|id| memory_mcp::memory::header_text(&store.get_header(*id).expect("header"))).collect()
}

/// A store of `n` completed episodes (3 steps each) copying `pool`, with
/// nothing queued for analysis or embedding; returns the ids in order.
fn build_store(dir: &Path, pool: &[Header], n: usize) -> Vec<uuid::Uuid> {
    let store = EpisodeStore::open_with(dir, StoreOptions { sync_on_complete: false }).expect("open");
    let mut r = Lcg(n as u64);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = store.create_episode(new_episode(&pool[i % pool.len()])).expect("create");
        for s in 1..=3 {
            store.add_step(id, new_step(s, &mut r)).expect("step");
        }
        store.complete_episode(id, outcome()).expect("complete");
        ids.push(id);
    }
    // The learning worker would analyse every episode as the server
    // starts; the bench times queries, not that.
    let mut b = store.database().batch();
    for kv in store.analysis_queue().iter() {
        let (key, _) = kv.into_inner().expect("key");
        b.remove(store.analysis_queue(), key.to_vec());
    }
    b.commit().expect("commit");
    store.flush_to_tables().expect("flush");
    ids
}

/// Writes each episode's pooled vector under `active`'s space, dequeues it
/// and records `active` and `settings` as the server would have.
/// Without `settings`, the server chooses as for a data dir from before
/// settings were stored (the model, when installed).
fn write_vectors(dir: &Path, ids: &[uuid::Uuid], pooled: &[Vec<f32>], active: &Active, settings: Option<&EmbeddingSettings>) {
    let store = EpisodeStore::open_with(dir, StoreOptions { sync_on_complete: false }).expect("open");
    for (chunk_start, chunk) in ids.chunks(10_000).enumerate().map(|(c, ch)| (c * 10_000, ch)) {
        let mut b = store.database().batch();
        for (k, id) in chunk.iter().enumerate() {
            let key = item_key(EPISODE_ITEM, id);
            b.insert(store.vectors(), key, encode_vector(active.space, &pooled[(chunk_start + k) % pooled.len()]));
            b.remove(store.embed_queue(), key);
        }
        b.commit().expect("commit");
    }
    let meta = store.database().keyspace("embedding", KeyspaceCreateOptions::default).expect("keyspace");
    meta.insert("active", serde_json::to_vec(active).expect("json")).expect("active");
    if let Some(settings) = settings {
        meta.insert("settings", serde_json::to_vec(settings).expect("json")).expect("settings");
    }
    store.database().persist(PersistMode::SyncAll).expect("persist");
}

fn link_model(data: &Path, model: &Path) {
    let models = data.join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    std::os::unix::fs::symlink(model, models.join("all-minilm-l6-v2")).expect("link");
}

fn settings(data: &Path, cache: &Path) -> Settings {
    Settings {
        data_dir: data.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        plugins_dir: data.join("plugins"),
        limits: Profile::Permissive.limits(),
        max_concurrency: 4,
        max_queued: 1024,
        tool_policy: ToolPolicy::default(),
        servers: BTreeMap::new(),
        audit_max_records: 1_000_000,
        embedding_providers: Default::default(),
        list_all_tools: false,
    }
}

/// Makes every component a server loads ready in `cache` (as `memory-mcp
/// warm` does), so no background compile of a fresh cache (the JS runtime,
/// the TypeScript stripper, the plugin templates) overlaps the timed queries.
async fn warm(data: &Path, cache: &Path) {
    let t = Instant::now();
    let done = memory_mcp::warm::warm(&settings(data, cache)).await.expect("warm");
    eprintln!("warmed {} components in {:.1} s", done.len(), t.elapsed().as_secs_f64());
}

async fn serve(data: &Path, cache: &Path) -> RunningService<RoleClient, ()> {
    let app = App::build(settings(data, cache)).await.expect("app");
    let (a, b) = tokio::io::duplex(1 << 20);
    let (running, client) = tokio::join!(memory_mcp::mcp::serve(app.server, a), ().serve(b));
    std::mem::forget(running.expect("serve"));
    client.expect("client")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Value {
    let Value::Object(map) = args else { return Value::Null };
    let r = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    r.structured_content.unwrap_or(Value::Null)
}

/// Waits until the embeddings section of `health_check` satisfies `done`.
async fn wait_health(client: &RunningService<RoleClient, ()>, what: &str, done: impl Fn(&Value) -> bool) -> Duration {
    let t = Instant::now();
    loop {
        let h = call(client, "health_check", json!({})).await;
        if done(&h["embeddings"]) && h["storage"]["index"]["state"] != "building" {
            return t.elapsed();
        }
        assert!(t.elapsed() < HEALTH_WAIT, "{what}: not ready after {HEALTH_WAIT:?}: {}", h["embeddings"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn queries() -> Vec<String> {
    let mut r = Lcg(23);
    (0..QUERIES).map(|i| format!("{} {} {} #{i}", r.pick(&ASKS), r.pick(&OBJECTS), r.pick(&QUALIFIERS))).collect()
}

fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Times `query_memory` (limit 10, relevance) over `texts`; checks that
/// the ranking was hybrid.
async fn time_queries(client: &RunningService<RoleClient, ()>, texts: &[String]) -> (f64, f64) {
    let mut lat = Vec::with_capacity(texts.len());
    for q in texts {
        let t = Instant::now();
        let v = call(client, "query_memory", json!({"query": q, "limit": 10})).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(v["ranking"], "hybrid", "{q}: {v}");
    }
    p50_p99(lat)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn embed_pool(settings: &EmbeddingSettings, data: &Path, cache: &ArtifactCache, texts: &[String]) -> (Active, Vec<Vec<f32>>) {
    let engine = memory_mcp::wasm::build_engine(settings.provider.metering()).expect("engine");
    let e = Embedder::load(&engine, cache, settings.clone(), data).await.expect("embedder");
    let t = Instant::now();
    let v = e.embed(texts).await.expect("embed");
    eprintln!("{}: embedded {} pooled headers in {:.1} s", settings.provider.name(), texts.len(), t.elapsed().as_secs_f64());
    (Active { space: e.space, info: e.info.clone() }, v)
}

async fn queries_at_sizes(model: &Path, base: &Path) {
    let sizes: Vec<usize> = std::env::var("BENCH_MINILM_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pool = pool(env_usize("BENCH_MINILM_POOL", 2000));
    let probe = base.join("probe");
    let texts = header_texts(&probe.join("headers"), &pool);
    let cache = base.join("cache");
    let art = ArtifactCache::new(&cache);
    link_model(&probe, model);
    let providers = [
        ("MiniLM", EmbeddingSettings { provider: ProviderKind::LocalMinilm, ..EmbeddingSettings::default() }),
        ("hashed", EmbeddingSettings::default()),
    ];
    let mut pooled = Vec::new();
    for (label, s) in &providers {
        pooled.push((*label, s.clone(), embed_pool(s, &probe, &art, &texts).await));
    }
    warm(&probe, &cache).await;
    let qs = queries();
    println!("\n| episodes | embedder | cold `query_memory` p50 / p99 | repeated p50 / p99 | vectors up after open |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        let seed = base.join(format!("seed-{n}"));
        let t = Instant::now();
        let ids = build_store(&seed, &pool, n);
        eprintln!("{n}: stored in {:.1} s", t.elapsed().as_secs_f64());
        for (label, settings, (active, vecs)) in &pooled {
            let data = base.join(format!("{label}-{n}"));
            let status = std::process::Command::new("cp").arg("-r").arg(&seed).arg(&data).status().expect("cp");
            assert!(status.success(), "cp -r");
            write_vectors(&data, &ids, vecs, active, Some(settings));
            if settings.provider == ProviderKind::LocalMinilm {
                link_model(&data, model);
            }
            let client = serve(&data, &cache).await;
            let up = wait_health(&client, label, |e| {
                e["state"]["status"] == "ok"
                    && e["indexed"]["episodes"].as_u64() == Some(n as u64)
                    && (n < memory_mcp::embeddings::ANN_MIN || e["indexed"]["approximate"] == true)
            })
            .await;
            let cold = time_queries(&client, &qs).await;
            let repeated = time_queries(&client, &qs).await;
            println!(
                "| {n} | {label} | {:.2} ms / {:.2} ms | {:.2} ms / {:.2} ms | {:.1} s |",
                cold.0, cold.1, repeated.0, repeated.1, up.as_secs_f64()
            );
            let _ = client.cancel().await;
        }
    }
}

/// The re-embedding job: a data dir of `n` episodes (distinct headers)
/// whose vectors are the hashed embedder's, opened with the model
/// installed and no stored choice, so the server makes the model the
/// default and re-embeds everything into its space in the background
/// (queries meanwhile served from the hashed space). Timed from the
/// server's start until the model's space serves every episode.
async fn reembed(model: &Path, base: &Path, n: usize) {
    let data = base.join(format!("reembed-{n}"));
    // Distinct headers: the job embeds every episode's own text.
    let pool = pool(n);
    let ids = build_store(&data, &pool, n);
    let texts = {
        let store = EpisodeStore::open_with(&data, StoreOptions { sync_on_complete: false }).expect("open");
        ids.iter().map(|id| memory_mcp::memory::header_text(&store.get_header(*id).expect("header"))).collect::<Vec<_>>()
    };
    let cache = base.join("cache");
    let (active, vecs) = embed_pool(&EmbeddingSettings::default(), &data, &ArtifactCache::new(&cache), &texts).await;
    write_vectors(&data, &ids, &vecs, &active, None);
    link_model(&data, model);
    warm(&data, &cache).await;
    let t = Instant::now();
    let client = serve(&data, &cache).await;
    let took = wait_health(&client, "re-embedding", |e| {
        e["state"]["status"] == "ok"
            && e["active_space"]["info"]["provider"] == "local-minilm"
            && e["reembedding"].is_null()
            && e["pending"] == 0
            && e["indexed"]["episodes"].as_u64() == Some(n as u64)
    })
    .await;
    let h = call(&client, "health_check", json!({})).await;
    println!(
        "\nre-embedding {n} episodes from the hashed space into the model's (the job, from the server's start until the model's space serves): {:.1} s ({:.0} episodes/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
    );
    eprintln!("(server open to switched: {:.1} s; embeddings after the switch: {})", t.elapsed().as_secs_f64(), h["embeddings"]);
    let _ = client.cancel().await;
}

fn main() {
    let Some(model) = std::env::var_os("MINILM_DIR") else {
        eprintln!("set MINILM_DIR to an installed all-minilm-l6-v2 directory (memory-mcp model install)");
        std::process::exit(2);
    };
    let model = PathBuf::from(model).canonicalize().expect("MINILM_DIR");
    let base = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        queries_at_sizes(&model, base.path()).await;
        let n = env_usize("BENCH_MINILM_REEMBED", 10_000);
        if n > 0 {
            reembed(&model, base.path(), n).await;
        }
    });
}
