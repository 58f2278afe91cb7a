//! Learning benchmark: `cargo bench -p memory-mcp --bench patterns` (or
//! `scripts/bench.sh`). Prints the README's Markdown tables.
//!
//! - extraction throughput through the component boundary (episodes/s),
//!   in batches as the worker sends them, against the same logic called
//!   natively (`pattern_analyzer` as an rlib) on the same episodes;
//! - the boundary itself: the same batches with no outcome, which the
//!   analyzer lifts and skips, so the call is almost only lifting and
//!   lowering;
//! - the learning worker end to end over fjall (read, analyse, merge,
//!   dequeue) while loading 10k and 100k episodes;
//! - `recommend_patterns` ranking p50/p99 at 10k and 100k episodes.
//!
//! `BENCH_PATTERN_SIZES=10000` picks the store sizes; `BENCH_QUICK=1` runs
//! a small version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memory_mcp::learning::{AnalyzerSet, AnalyzersState, Learning, PatternKind, PatternQuery, PatternStore, StoredPattern, analyse, episode_to_wit};
use memory_mcp::memory::{
    EpisodeStore, NewEpisode, NewStep, Outcome, OutcomeType, StepResult, StepStatus, StoreOptions, TaskContext, TaskType,
};
use memory_mcp::wasm::ArtifactCache;
use memory_mcp::world::types as w;
use pattern_analyzer::model as m;

const DOMAINS: [&str; 10] = ["web-api", "data", "infra", "ml", "mobile", "cli", "docs", "security", "frontend", "db"];
const NOUNS: [&str; 12] = ["payments", "search", "auth", "orders", "billing", "cache", "parser", "scheduler", "gateway", "ledger", "profile", "inventory"];
const VERBS: [&str; 6] = ["add", "fix", "refactor", "test", "document", "migrate"];
/// Tool sequences a task family draws from, with how often each succeeds.
const PLAYBOOKS: [(&[&str], u64); 5] = [
    (&["read_spec", "write_code", "write_tests", "run_tests"], 90),
    (&["write_code", "run_tests"], 40),
    (&["grep", "edit", "cargo_build", "cargo_test"], 80),
    (&["scaffold", "write_code", "lint", "run_tests"], 70),
    (&["edit", "deploy"], 20),
];

#[path = "shared/lcg.rs"]
mod lcg;
use lcg::Lcg;

/// One synthetic completed episode: (header fields, steps, outcome).
struct Synthetic {
    new: NewEpisode,
    steps: Vec<NewStep>,
    outcome: OutcomeType,
}

fn synthetic(r: &mut Lcg) -> Synthetic {
    let (tools, rate) = PLAYBOOKS[r.next() as usize % PLAYBOOKS.len()];
    let success = r.next() % 100 < rate;
    let mut steps = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        // Some failures are recovered by the next step.
        let fails = !success && i + 1 == tools.len() || r.next().is_multiple_of(10);
        steps.push(NewStep {
            step_number: steps.len() as u32 + 1,
            timestamp: None,
            tool: t.to_string(),
            action: if r.next().is_multiple_of(8) { "if the build is stale, rebuild first".into() } else { format!("{t} step") },
            parameters: Default::default(),
            result: if fails {
                StepResult { status: StepStatus::Error, output: None, message: Some("test failed: assertion".into()) }
            } else {
                StepResult { status: StepStatus::Success, output: Some("ok".into()), message: None }
            },
            latency_ms: 20 + r.next() % 200,
            tokens_used: None,
        });
        if fails && success {
            steps.push(NewStep {
                step_number: steps.len() as u32 + 1,
                timestamp: None,
                tool: "editor".into(),
                action: "fix the failing assertion".into(),
                parameters: Default::default(),
                result: StepResult { status: StepStatus::Success, output: None, message: None },
                latency_ms: 30,
                tokens_used: None,
            });
        }
    }
    Synthetic {
        new: NewEpisode {
            task_description: format!("{} the {} {}", r.pick(&VERBS), r.pick(&NOUNS), r.pick(&["endpoint", "service", "worker"])),
            domain: r.pick(&DOMAINS).to_string(),
            task_type: TaskType::ALL[r.next() as usize % 6],
            context: TaskContext { language: Some("rust".into()), tags: vec![r.pick(&NOUNS).to_string()], ..Default::default() },
            metadata: BTreeMap::new(),
        },
        steps,
        outcome: if success { OutcomeType::Success } else { OutcomeType::Failure },
    }
}

fn store_episode(store: &EpisodeStore, s: Synthetic) -> anyhow::Result<()> {
    let id = store.create_episode(s.new)?;
    for st in s.steps {
        store.add_step(id, st)?;
    }
    store.complete_episode(id, Outcome { outcome_type: s.outcome, verdict: String::new(), artifacts: vec![], completed: vec![], failed: vec![], reason: None, error_details: None })?;
    Ok(())
}

/// The same episode in the analyzer's native model.
fn native(e: &w::Episode) -> m::Episode {
    m::Episode {
        id: e.id.clone(),
        task_description: e.task_description.clone(),
        domain: e.domain.clone(),
        task_type: match e.task_type {
            w::TaskType::CodeGeneration => m::TaskType::CodeGeneration,
            w::TaskType::Debugging => m::TaskType::Debugging,
            w::TaskType::Refactoring => m::TaskType::Refactoring,
            w::TaskType::Testing => m::TaskType::Testing,
            w::TaskType::Analysis => m::TaskType::Analysis,
            w::TaskType::Documentation => m::TaskType::Documentation,
        },
        language: e.context.language.clone(),
        framework: e.context.framework.clone(),
        complexity: m::Complexity::Moderate,
        tags: e.context.tags.clone(),
        steps: e
            .steps
            .iter()
            .map(|s| m::Step {
                number: s.step_number,
                tool: s.tool.clone(),
                action: s.action.clone(),
                parameters_json: s.parameters_json.clone(),
                status: match s.result.status {
                    w::StepStatus::Success => m::StepStatus::Success,
                    w::StepStatus::Error => m::StepStatus::Error,
                    w::StepStatus::Timeout => m::StepStatus::Timeout,
                },
                message: s.result.message.clone(),
                latency_ms: s.latency_ms,
            })
            .collect(),
        outcome: e.outcome.as_ref().map(|o| match o.outcome_type {
            w::OutcomeType::Success => m::OutcomeType::Success,
            w::OutcomeType::PartialSuccess => m::OutcomeType::PartialSuccess,
            w::OutcomeType::Failure => m::OutcomeType::Failure,
        }),
        reward: e.reward.as_ref().map(|r| r.total),
    }
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.0} µs") } else { format!("{:.2} ms", us / 1000.0) }
}

async fn boundary(set: &AnalyzerSet, wit: &[w::Episode], quick: bool) -> anyhow::Result<()> {
    println!("### Extraction through the component boundary\n");
    println!("| batch | episodes/s (component) | episodes/s (native) | per episode: component / native | boundary only (no outcome) |");
    println!("|---:|---:|---:|---:|---:|");
    let natives: Vec<m::Episode> = wit.iter().map(native).collect();
    let blank: Vec<w::Episode> = wit.iter().map(|e| w::Episode { outcome: None, ..e.clone() }).collect();
    let rounds = if quick { 1 } else { 3 };
    for batch in [64usize, 256, 1024] {
        let mut best = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..rounds {
            let t = Instant::now();
            for chunk in wit.chunks(batch) {
                set.builtin.extract(set.memory(), chunk).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let comp = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for chunk in natives.chunks(batch) {
                std::hint::black_box(pattern_analyzer::extract::extract(chunk));
            }
            let nat = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for chunk in blank.chunks(batch) {
                set.builtin.extract(set.memory(), chunk).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let bnd = t.elapsed().as_secs_f64();
            best = (best.0.min(comp), best.1.min(nat), best.2.min(bnd));
        }
        let n = wit.len() as f64;
        println!(
            "| {batch} | {:.0} | {:.0} | {:.1} µs / {:.1} µs | {:.1} µs per episode |",
            n / best.0,
            n / best.1,
            best.0 / n * 1e6,
            best.1 / n * 1e6,
            best.2 / n * 1e6
        );
    }
    // With the host's checks and merge, as the worker runs them.
    let t = Instant::now();
    let mut records = 0;
    for chunk in wit.chunks(256) {
        records += analyse(set, chunk).await.len();
    }
    let took = t.elapsed().as_secs_f64();
    println!("\nWith output checks (all analyzers, batches of 256): {:.0} episodes/s, {records} records.\n", wit.len() as f64 / took);
    Ok(())
}

async fn at_size(cache: &ArtifactCache, n: usize) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EpisodeStore::open_with(dir.path(), StoreOptions { sync_on_complete: false })?);
    let mut r = Lcg(n as u64);
    let t = Instant::now();
    for _ in 0..n {
        store_episode(&store, synthetic(&mut r))?;
    }
    let load = t.elapsed();
    let set = Arc::new(AnalyzerSet::load(cache, memory_mcp::components::PATTERN_ANALYZER, None, store.clone()).await?);
    let patterns = Arc::new(PatternStore::open(&store)?);
    let (_tx, rx) = tokio::sync::watch::channel(AnalyzersState::Ready(set.clone()));
    let learning = Learning::new(store.clone(), patterns.clone(), rx);
    let t = Instant::now();
    while learning.step(&set).await? {}
    let learn = t.elapsed();
    // As `recommend_patterns` ranks: patterns and heuristics in one call
    // of the scorer component.
    let group = |p: &StoredPattern| {
        if p.kind.is_recommendable() {
            Some(0)
        } else {
            (p.kind == PatternKind::Heuristic).then_some(1)
        }
    };
    // A similarity for every record, as with embeddings.
    let mut sim = Lcg(13);
    let semantic: std::collections::HashMap<uuid::Uuid, f32> =
        patterns.ids().into_iter().map(|id| (id, (sim.next() % 110) as f32 / 100.0 - 0.2)).collect();
    let (mut times, mut search, mut meaning) = (Vec::new(), Vec::new(), Vec::new());
    let mut q = Lcg(7);
    // Thread CPU time per `recommend` call as well as wall time: the calls
    // run on this (the `block_on`) thread, so its CPU time is the call's
    // own work, which other processes on a loaded machine do not inflate.
    let mut cpu = Vec::new();
    let queries: usize = std::env::var("BENCH_RANK_QUERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for _ in 0..queries {
        let text = format!("{} the {} endpoint", q.pick(&VERBS), q.pick(&NOUNS));
        let domain = q.pick(&DOMAINS);
        let tags = vec![q.pick(&NOUNS).to_string()];
        let query = PatternQuery { text: &text, domain: Some(domain), tags: &tags, semantic: None };
        let (t, c) = (Instant::now(), cpu_time::ThreadTime::now());
        let ranked = set.rank_patterns(&patterns, &query, 2, 3, 0.0, group).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        cpu.push(c.elapsed());
        std::hint::black_box(ranked);
        // As `search_patterns` ranks (limit 5, minimum 0.3).
        let t = Instant::now();
        std::hint::black_box(set.rank_patterns(&patterns, &query, 1, 5, 0.3, |_| Some(0)).await.map_err(|e| anyhow::anyhow!("{e}"))?);
        search.push(t.elapsed());
        let query = PatternQuery { text: &text, domain: Some(domain), tags: &tags, semantic: Some(&semantic) };
        let t = Instant::now();
        std::hint::black_box(set.rank_patterns(&patterns, &query, 2, 3, 0.0, group).await.map_err(|e| anyhow::anyhow!("{e}"))?);
        meaning.push(t.elapsed());
    }
    let p50 = pct(&mut times, 0.5);
    let p99 = pct(&mut times, 0.99);
    eprintln!(
        "RANKING {n}: recommend {} / {} (thread CPU p50 {}); search {} / {}; recommend with meaning {} / {}",
        fmt(p50),
        fmt(p99),
        fmt(pct(&mut cpu, 0.5)),
        fmt(pct(&mut search, 0.5)),
        fmt(pct(&mut search, 0.99)),
        fmt(pct(&mut meaning, 0.5)),
        fmt(pct(&mut meaning, 0.99))
    );
    Ok(format!(
        "| {n} | {:.1} s | {:.0} episodes/s | {} | {} | {} |",
        load.as_secs_f64(),
        n as f64 / learn.as_secs_f64(),
        patterns.len(),
        fmt(p50),
        fmt(p99)
    ))
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let sizes: Vec<usize> = match std::env::var("BENCH_PATTERN_SIZES") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) if quick => vec![2_000],
        Err(_) => vec![10_000, 100_000],
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let cache_dir = tempfile::tempdir()?;
        let cache = ArtifactCache::new(cache_dir.path());
        // Episodes for the boundary benchmark, as the worker reads them.
        let dir = tempfile::tempdir()?;
        let store = Arc::new(EpisodeStore::open_with(dir.path(), StoreOptions { sync_on_complete: false })?);
        let mut r = Lcg(42);
        let count = if quick { 2_000 } else { 20_000 };
        for _ in 0..count {
            store_episode(&store, synthetic(&mut r))?;
        }
        let mut ids = store.all_ids();
        ids.sort();
        let wit: Vec<w::Episode> = ids.iter().map(|id| store.get_episode(*id).map(episode_to_wit)).collect::<Result<_, _>>()?;
        let steps: usize = wit.iter().map(|e| e.steps.len()).sum();
        println!("{count} episodes, {:.1} steps each on average\n", steps as f64 / count as f64);
        let set = AnalyzerSet::load(&cache, memory_mcp::components::PATTERN_ANALYZER, None, store.clone()).await?;
        boundary(&set, &wit, quick).await?;
        println!("### Learning and recommending at scale\n");
        println!("| episodes | load (store writes) | learning worker (fjall read → analyse → merge) | records | recommend p50 | recommend p99 |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for n in sizes {
            println!("{}", at_size(&cache, n).await?);
        }
        Ok(())
    })
}
