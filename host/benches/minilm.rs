//! The all-MiniLM-L6-v2 component's cost, through the host's real
//! `Embedder` (read-only preopen of the model directory, one resident
//! instance), in the two engines its calls can be metered in, in the same
//! process: `epoch` (the deadline-metered engine the server uses for it,
//! `Metering::Deadline`) and `fuel` (`Metering::Fuel`, which counts every
//! instruction): the load with a cold artifact cache
//! (compile, verify, instantiate, read and parse the weights) and with a
//! warm one, one short query text (11 tokens with `[CLS]`/`[SEP]`;
//! p50/p99), batches of 32 (texts/s), and the RSS the warm-cache load and
//! these calls add. `scripts/bench-minilm.sh` runs it alternately with
//! the same candle code compiled natively
//! (`components/embedder-minilm/benches/native.rs`, the same texts), both
//! with `RAYON_NUM_THREADS=1`, and prints the medians.
//!
//! The model comes from `MINILM_DIR` (an installed model directory).
//! `MINILM_WASM=label=path,...` adds other builds of the component (e.g.
//! `nosimd=target/minilm-nosimd/wasm32-wasip2/release/embedder_minilm.wasm`),
//! timed in the same process after the embedded one (in the epoch engine),
//! for the SIMD A/B or a before/after of the component.
//! Every figure is printed as `component[<label>] <what>: <value>`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

use memory_mcp::wasm::Metering;

use std::time::Instant;

use memory_mcp::embeddings::{Embedder, EmbeddingSettings, ProviderKind};
use memory_mcp::wasm::ArtifactCache;

#[path = "shared/minilm_texts.rs"]
mod minilm_texts;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Times one build of the component (`bytes`) under `label`.
async fn run(label: &str, bytes: &[u8], metering: Metering, data: &std::path::Path) {
    let engine = memory_mcp::wasm::build_engine(metering).expect("engine");
    let cache_dir = tempfile::tempdir().expect("tmp");
    let cache = ArtifactCache::new(cache_dir.path());
    let settings = EmbeddingSettings { provider: ProviderKind::LocalMinilm, ..EmbeddingSettings::default() };
    let name = format!("embedder-minilm-{label}");
    let t = Instant::now();
    let cold = Embedder::load_component(&engine, &cache, settings.clone(), data, &name, bytes).await.expect("load");
    println!("component[{label}] load, cold artifact cache (compile + verify + instantiate + weights), ms: {:.0}", ms(t));
    drop(cold);
    // The compiler's freed memory goes back to the OS first, so the added
    // RSS is what a server starting with a warm artifact cache pays.
    memory_mcp::memory::release_free_memory();
    let before = rss_mib();
    let t = Instant::now();
    let e = Embedder::load_component(&engine, &cache, settings, data, &name, bytes).await.expect("load");
    println!("component[{label}] load, artifact cached, ms: {:.0}", ms(t));
    let short = minilm_texts::SHORT.to_string();
    let mut lat = Vec::new();
    for i in 0..minilm_texts::WARM + minilm_texts::CALLS {
        let t = Instant::now();
        e.embed(std::slice::from_ref(&short)).await.expect("embed");
        if i >= minilm_texts::WARM {
            lat.push(ms(t));
        }
    }
    let (p50, p99) = minilm_texts::p50_p99(&mut lat);
    println!("component[{label}] one short text p50 ms: {p50:.1}");
    println!("component[{label}] one short text p99 ms: {p99:.1}");
    let texts = minilm_texts::batch();
    e.embed(&texts).await.expect("warm");
    let t = Instant::now();
    for _ in 0..minilm_texts::ROUNDS {
        e.embed(&texts).await.expect("embed");
    }
    let per_s = (minilm_texts::ROUNDS * texts.len()) as f64 / t.elapsed().as_secs_f64();
    println!("component[{label}] batches of 32 texts/s: {per_s:.1}");
    println!("component[{label}] added RSS (instance with the model, after these calls), MiB: {:.0}", rss_mib() - before);
}

fn main() {
    let Some(dir) = std::env::var_os("MINILM_DIR") else {
        eprintln!("set MINILM_DIR to an installed all-minilm-l6-v2 directory (memory-mcp model install)");
        std::process::exit(2);
    };
    // The embedder looks for <data dir>/models/all-minilm-l6-v2.
    let data = tempfile::tempdir().expect("tmp");
    let models = data.path().join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    std::os::unix::fs::symlink(std::path::Path::new(&dir).canonicalize().expect("MINILM_DIR"), models.join("all-minilm-l6-v2"))
        .expect("link");
    let others: Vec<(String, Vec<u8>)> = std::env::var("MINILM_WASM")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(label, path)| (label.to_string(), std::fs::read(path).expect("MINILM_WASM file")))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        // Each run's instance is gone before the next starts, so each
        // RSS figure is its own.
        run("epoch", memory_mcp::components::EMBEDDER_MINILM, Metering::Deadline, data.path()).await;
        run("fuel", memory_mcp::components::EMBEDDER_MINILM, Metering::Fuel, data.path()).await;
        for (label, bytes) in &others {
            run(label, bytes, Metering::Deadline, data.path()).await;
        }
    });
}
