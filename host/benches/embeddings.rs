//! Embeddings benchmark: `cargo bench -p memory-mcp --bench embeddings`
//! (or `scripts/bench.sh`). Prints the README's Markdown tables.
//!
//! - local embedding throughput through the component (fresh store per
//!   call, batches of 256 short task descriptions), against the same code
//!   called natively (`embedder_local` as an rlib) in the same run;
//! - vector search p50/p99 at each size: exact search, and from 20k
//!   vectors the HNSW graph (usearch) with exact re-scoring, its recall@10
//!   against exact search over the same vectors, its build time, and the
//!   index's memory per vector.
//!
//! The vectors are the local embedder's, of 384 dimensions, from synthetic
//! task descriptions (varied verbs, objects, qualifiers and numbers), so
//! they have the clustering real descriptions have.
//! `BENCH_EMBED_SIZES=10000,1000000` picks the sizes (default
//! 10k, 100k, 1M); `BENCH_QUICK=1` runs 10k and 100k.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use std::sync::Arc;
use std::time::{Duration, Instant};

use memory_mcp::embeddings::{ANN_MIN, Embedder, EmbeddingSettings, Space, VectorIndex};
use memory_mcp::wasm::ArtifactCache;
use uuid::Uuid;

const DIMS: usize = 384;
const VERBS: [&str; 16] = [
    "add", "fix", "refactor", "test", "document", "migrate", "optimise", "remove", "rename", "deploy", "debug",
    "profile", "secure", "validate", "cache", "split",
];
const OBJECTS: [&str; 24] = [
    "login endpoint", "payment webhook", "search index", "order table", "billing report", "session cache",
    "config parser", "job scheduler", "api gateway", "ledger export", "user profile page", "inventory sync",
    "image resizer", "email queue", "feature flags", "rate limiter", "audit log", "csv importer",
    "graphql schema", "docker image", "ci pipeline", "metrics dashboard", "auth middleware", "pdf renderer",
];
const QUALIFIERS: [&str; 20] = [
    "for the mobile app", "in the admin panel", "with retries", "behind a feature flag", "for large tenants",
    "after the outage", "using postgres", "with unit tests", "in rust", "in typescript", "for the eu region",
    "without downtime", "under load", "with tracing", "for the beta", "on kubernetes", "in the worker",
    "with pagination", "for compliance", "with caching",
];

#[path = "shared/lcg.rs"]
mod lcg;
use lcg::Lcg;

fn text(r: &mut Lcg) -> String {
    format!("{} the {} {} (ticket {})", r.pick(&VERBS), r.pick(&OBJECTS), r.pick(&QUALIFIERS), r.next() % 5000)
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn sizes() -> Vec<usize> {
    if let Ok(s) = std::env::var("BENCH_EMBED_SIZES") {
        return s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if std::env::var_os("BENCH_QUICK").is_some() { vec![10_000, 100_000] } else { vec![10_000, 100_000, 1_000_000] }
}

async fn throughput() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = ArtifactCache::new(dir.path());
    let engine = memory_mcp::wasm::build_engine(memory_mcp::wasm::Metering::Fuel).expect("engine");
    let embedder = Embedder::load(&engine, &cache, EmbeddingSettings::default(), dir.path()).await.expect("local embedder");
    let mut r = Lcg(7);
    let texts: Vec<String> = (0..256).map(|_| text(&mut r)).collect();
    let rounds = if std::env::var_os("BENCH_QUICK").is_some() { 40 } else { 200 };
    for _ in 0..5 {
        embedder.embed(&texts).await.expect("warm-up");
    }
    let started = Instant::now();
    for _ in 0..rounds {
        embedder.embed(&texts).await.expect("embed");
    }
    let component = (rounds * texts.len()) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut scratch = Vec::new();
    let mut out = vec![0f32; DIMS];
    for _ in 0..rounds {
        for t in &texts {
            embedder_local::embed_into(t, &mut out, &mut scratch);
        }
    }
    let native = (rounds * texts.len()) as f64 / started.elapsed().as_secs_f64();
    println!("\n### Local embedding throughput (384 dims, batches of 256 short texts)\n");
    println!("| path | texts/s |\n|---|---|");
    println!("| component (fresh store per call) | **{component:.0}** |");
    println!("| native, same code | {native:.0} |");
}

fn search_table() {
    println!("\n### Vector search (384 dims; p50/p99 over 200 queries; recall@10 against exact search)\n");
    println!("| vectors | exact p50 | exact p99 | HNSW p50 | HNSW p99 | recall@10 | HNSW build | memory/vector |");
    println!("|---|---|---|---|---|---|---|---|");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in sizes() {
        let started = Instant::now();
        let mut r = Lcg(n as u64);
        let mut ix = VectorIndex::new(Space(1), DIMS);
        let mut scratch = Vec::new();
        let mut v = vec![0f32; DIMS];
        for _ in 0..n {
            embedder_local::embed_into(&text(&mut r), &mut v, &mut scratch);
            ix.upsert(Uuid::now_v7(), &v).expect("upsert");
        }
        eprintln!("{n}: embedded and stored in {:.1} s", started.elapsed().as_secs_f64());
        let queries: Vec<Vec<f32>> = (0..200).map(|_| embedder_local::embed(&text(&mut r), DIMS as u32)).collect();
        let all = |_: &Uuid| true;
        let mut exact_t = Vec::new();
        let mut truth = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let hits = ix.exact(q, 10, &all);
            exact_t.push(t.elapsed());
            truth.push(hits);
        }
        let (mut ann_cells, build, mut per_vector) = (
            vec!["—".to_string(), "—".to_string(), "—".to_string()],
            "—".to_string(),
            ix.memory_bytes() as f64 / n as f64,
        );
        let mut build_cell = build;
        if n >= ANN_MIN {
            let t = Instant::now();
            ix.build_ann(threads).expect("build");
            build_cell = format!("{:.1} s ({threads} threads)", t.elapsed().as_secs_f64());
            per_vector = ix.memory_bytes() as f64 / n as f64;
            let mut ann_t = Vec::new();
            let mut found = 0usize;
            for (q, want) in queries.iter().zip(&truth) {
                let t = Instant::now();
                let hits = ix.search(q, 10, &all);
                ann_t.push(t.elapsed());
                // Ties in similarity make ids interchangeable: a hit counts
                // when its score reaches the exact 10th best.
                let tenth = want.last().map_or(f32::MIN, |h| h.1);
                found += hits.iter().filter(|h| want.iter().any(|w| w.0 == h.0) || h.1 >= tenth - 1e-6).count().min(want.len());
            }
            let recall = found as f64 / truth.iter().map(Vec::len).sum::<usize>() as f64;
            ann_cells = vec![us(pct(&mut ann_t, 0.5)), us(pct(&mut ann_t, 0.99)), format!("{recall:.3}")];
        }
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {:.0} B |",
            us(pct(&mut exact_t, 0.5)),
            us(pct(&mut exact_t, 0.99)),
            ann_cells[0],
            ann_cells[1],
            ann_cells[2],
            build_cell,
            per_vector
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(throughput());
    let _ = Arc::new(());
    search_table();
}
