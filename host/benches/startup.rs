//! Start-up at scale: `cargo bench -p memory-mcp --bench startup`.
//!
//! Seeds a data dir with `BENCH_STARTUP_EPISODES` (default 100,000)
//! completed one-step episodes in-process through the store API (kept in
//! `target/tmp/startup-<n>` between runs), lets one server run drain the
//! analysis and embedding queues (the steady state of a data dir in use),
//! then spawns the real binary `BENCH_STARTUP_RUNS` times (default 3) and
//! measures, from the spawn:
//!
//! - when `initialize` and `tools/list` are answered;
//! - the first `query_memory` (its reply time and the index coverage it
//!   states);
//! - when the search index is complete (`health_check` storage.index);
//! - RSS (VmRSS of the child) once everything is loaded, per episode, with
//!   the RSS of an empty data dir beside it.
//!
//! `BENCH_BIN` runs another build of the binary against the same data (for
//! before/after figures).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use memory_mcp::memory::{
    EpisodeStore, NewEpisode, NewStep, Outcome, OutcomeType, StepResult, StepStatus, StoreOptions, TaskContext, TaskType,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const VERBS: [&str; 8] = ["fix", "add", "refactor", "test", "document", "optimise", "debug", "migrate"];
const NOUNS: [&str; 12] = ["payments", "search", "auth", "orders", "billing", "cache", "parser", "scheduler", "gateway", "ledger", "profile", "inventory"];
const PARTS: [&str; 8] = ["endpoint", "service", "module", "handler", "index", "worker", "client", "schema"];
const TOOLS: [&str; 6] = ["cargo", "editor", "grep", "git", "pytest", "curl"];
const DOMAINS: [&str; 10] = ["web-api", "data", "infra", "ml", "mobile", "cli", "docs", "security", "frontend", "db"];

/// A small deterministic generator, so every run loads the same data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next() % xs.len()]
    }
}

fn seed(dir: &Path, n: usize) {
    let marker = dir.join("seeded");
    if marker.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    let store = EpisodeStore::open_with(dir, StoreOptions { sync_on_complete: false }).expect("open");
    let mut r = Lcg(n as u64);
    for _ in 0..n {
        let new = NewEpisode {
            task_description: format!("{} the {} {} and its {} {}", r.pick(&VERBS), r.pick(&NOUNS), r.pick(&PARTS), r.pick(&NOUNS), r.pick(&PARTS)),
            domain: r.pick(&DOMAINS).to_string(),
            task_type: TaskType::ALL[r.next() % 6],
            context: TaskContext { language: Some("rust".into()), tags: vec![r.pick(&NOUNS).to_string()], ..Default::default() },
            metadata: BTreeMap::new(),
        };
        let id = store.create_episode(new).expect("create");
        let ok = !r.next().is_multiple_of(5);
        let step = NewStep {
            step_number: 1,
            timestamp: None,
            tool: r.pick(&TOOLS).to_string(),
            action: format!("{} {} {}", r.pick(&VERBS), r.pick(&NOUNS), r.pick(&PARTS)),
            parameters: serde_json::from_value(json!({"path": format!("src/{}.rs", r.pick(&NOUNS))})).unwrap_or_default(),
            result: StepResult {
                status: if ok { StepStatus::Success } else { StepStatus::Error },
                output: ok.then(|| format!("{} passed", r.next() % 50)),
                message: (!ok).then(|| format!("{} failed in {}", r.pick(&PARTS), r.pick(&NOUNS))),
            },
            latency_ms: (r.next() % 3000) as u64,
            tokens_used: Some((r.next() % 2000) as u64),
        };
        store.add_step(id, step).expect("step");
        let t = [OutcomeType::Success, OutcomeType::PartialSuccess, OutcomeType::Failure][r.next() % 3];
        let outcome = Outcome { outcome_type: t, verdict: "done".into(), artifacts: vec![], completed: vec![], failed: vec![], reason: None, error_details: None };
        store.complete_episode(id, outcome).expect("complete");
    }
    store.flush_to_tables().expect("flush");
    drop(store);
    std::fs::write(&marker, n.to_string()).expect("marker");
    eprintln!("seeded {n} episodes in {:.1} s", started.elapsed().as_secs_f64());
}

/// Raw JSON-RPC over the child's stdio: every reply is timed exactly.
struct Raw {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    spawned: Instant,
    next_id: u64,
}

impl Raw {
    fn spawn(bin: &Path, data: &Path, cache: &Path, log: &Path) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir").arg(data).arg("--cache-dir").arg(cache).env("MEMORY_MCP_LOG", "info").env_remove("MEMORY_MCP_CONFIG");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(std::fs::File::create(log).expect("log"));
        cmd.kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawn");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, stdin, stdout, spawned, next_id: 0 }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn send(&mut self, v: Value) {
        let mut line = serde_json::to_vec(&v).expect("json");
        line.push(b'\n');
        self.stdin.write_all(&line).await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn request(&mut self, method: &str, params: Value) -> (Value, Duration) {
        self.next_id += 1;
        let id = self.next_id;
        let t = Instant::now();
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        (self.reply(id).await, t.elapsed())
    }

    async fn reply(&mut self, id: u64) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).await.expect("read");
            assert!(n > 0, "the server closed its stdout");
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    async fn tool(&mut self, name: &str, args: Value) -> (Value, Duration) {
        let (v, took) = self.request("tools/call", json!({"name": name, "arguments": args})).await;
        (v["result"]["structuredContent"].clone(), took)
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the search index is complete and the queues are drained.
async fn settle(s: &mut Raw, limit: Duration) -> (Option<Duration>, bool) {
    let started = Instant::now();
    let mut index_done = None;
    loop {
        let (h, _) = s.tool("health_check", json!({})).await;
        let index = &h["storage"]["index"];
        // Builds without a background index are complete once they answer.
        if index_done.is_none() && (index.is_null() || index["state"] == "ready") {
            index_done = Some(s.spawned.elapsed());
        }
        let indexed = &h["embeddings"]["indexed"];
        // The approximate graph is part of the steady state past its threshold.
        let graph = indexed["approximate"] == true || indexed["episodes"].as_u64().unwrap_or(0) < memory_mcp::embeddings::ANN_MIN as u64;
        let drained = h["learning"]["analysis_backlog"].as_u64() == Some(0)
            && h["embeddings"]["pending"].as_u64() == Some(0)
            && h["embeddings"]["state"]["status"] == "ok"
            && graph;
        if index_done.is_some() && drained {
            return (index_done, true);
        }
        if started.elapsed() > limit {
            return (index_done, false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Run {
    initialize: Duration,
    tools_list: Duration,
    first_query: Duration,
    first_query_index: Value,
    index_done: Option<Duration>,
    rss_kb: u64,
    embedded: Value,
}

async fn run_once(bin: &Path, data: &Path, cache: &Path, log: &Path, settle_for: Duration, linger: Duration) -> Run {
    let mut s = Raw::spawn(bin, data, cache, log);
    let init_params = json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}});
    let (_, _) = s.request("initialize", init_params).await;
    let initialize = s.spawned.elapsed();
    s.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    let (tools, _) = s.request("tools/list", json!({})).await;
    let tools_list = s.spawned.elapsed();
    assert!(tools["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "tools/list: {tools}");
    let (q, first_query) = s.tool("query_memory", json!({"query": "fix payments endpoint", "limit": 5})).await;
    let (index_done, settled) = settle(&mut s, settle_for).await;
    if !settled {
        eprintln!("warning: not settled after {settle_for:?}");
    }
    // A few queries, so the RSS includes what serving them touches.
    for q in ["debug auth handler", "migrate ledger schema", "cargo test passed", "optimise cache worker"] {
        let _ = s.tool("query_memory", json!({"query": q, "limit": 10})).await;
    }
    let rss_kb = rss_kb(s.pid());
    let (h, _) = s.tool("health_check", json!({})).await;
    tokio::time::sleep(linger).await;
    let _ = s.child.kill().await;
    Run {
        initialize,
        tools_list,
        first_query,
        first_query_index: q["index"].clone(),
        index_done,
        rss_kb,
        embedded: h["embeddings"]["indexed"].clone(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::var("BENCH_STARTUP_EPISODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runs: usize = std::env::var("BENCH_STARTUP_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let bin = std::env::var_os("BENCH_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_memory-mcp")));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data = std::env::var_os("BENCH_STARTUP_DIR").map(PathBuf::from).unwrap_or_else(|| tmp.join(format!("startup-{n}")));
    let cache = tmp.join("startup-cache");
    let log = tmp.join("startup-server.log");
    seed(&data, n);
    let warmed = std::process::Command::new(&bin).arg("--data-dir").arg(tmp.join("startup-warm")).arg("--cache-dir").arg(&cache).arg("warm").stderr(Stdio::null()).status();
    assert!(warmed.is_ok_and(|s| s.success()), "warming the artifact cache failed");
    // The store's own part in-process: the search index and the summaries.
    let self_rss = || rss_kb(std::process::id());
    let before = self_rss();
    let store = EpisodeStore::open(&data).expect("open");
    let indexed = self_rss();
    drop(store);
    let store_part = indexed.saturating_sub(before) as f64 * 1024.0;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        // The steady state: analysis and embedding queues drained once, the
        // approximate graph built and saved.
        let settled = data.join("settled-with-graph");
        if !settled.exists() {
            let t = Instant::now();
            // Lingers while the worker saves the graph it built.
            let r = run_once(&bin, &data, &cache, &log, Duration::from_secs(1800), Duration::from_secs(15)).await;
            eprintln!("first run (drains the queues) took {:.1} s; embedded {}", t.elapsed().as_secs_f64(), r.embedded);
            std::fs::write(&settled, "1").expect("marker");
        }
        let empty = tempfile::tempdir().expect("tempdir");
        let base = run_once(&bin, empty.path(), &cache, &log, Duration::from_secs(120), Duration::ZERO).await;
        println!("| setting | measure | value |");
        println!("|---|---|---|");
        println!("| empty data dir | `tools/list` answered after spawn | {} |", ms(base.tools_list));
        println!("| empty data dir | RSS | {:.0} MB |", base.rss_kb as f64 / 1024.0);
        println!("| {n} episodes, in-process | store opened and indexed: BM25 index, summaries, fjall's cache (per episode) | {:.0} MB ({:.0} B) |", store_part / 1048576.0, store_part / n as f64);
        for i in 0..runs {
            let r = run_once(&bin, &data, &cache, &log, Duration::from_secs(600), Duration::ZERO).await;
            let per = r.rss_kb as f64 * 1024.0 / n as f64;
            let above = (r.rss_kb.saturating_sub(base.rss_kb)) as f64 * 1024.0 / n as f64;
            println!("| {n} episodes, run {} | `initialize` / `tools/list` answered after spawn | {} / {} |", i + 1, ms(r.initialize), ms(r.tools_list));
            println!("| {n} episodes, run {} | first `query_memory` (reply time; index coverage) | {} ; {} |", i + 1, ms(r.first_query), r.first_query_index);
            println!("| {n} episodes, run {} | search index complete after spawn | {} |", i + 1, r.index_done.map_or("-".into(), ms));
            println!("| {n} episodes, run {} | RSS, loaded (per episode; above an empty dir) | {:.0} MB ({per:.0} B; {above:.0} B) |", i + 1, r.rss_kb as f64 / 1024.0);
            println!("| {n} episodes, run {} | vectors indexed | {} |", i + 1, r.embedded);
        }
    });
}
