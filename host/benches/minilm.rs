//! The all-MiniLM-L6-v2 component's cost, through the host's real
//! `Embedder` (metered store, read-only preopen of the model directory):
//! the first call (instantiation plus reading and parsing the weights),
//! one short query text (p50/p99), batches of 32 (texts/s), and the
//! process's added RSS. `scripts/bench-minilm.sh` runs it beside the same
//! candle code compiled natively, both with `RAYON_NUM_THREADS=1`.
//! The model comes from `MINILM_DIR` (an installed model directory).

use std::time::Instant;

use memory_mcp::embeddings::{Embedder, EmbeddingSettings, ProviderKind};
use memory_mcp::wasm::artifacts::ArtifactCache;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let engine = memory_mcp::wasm::engine::build(memory_mcp::wasm::Metering::Fuel).expect("engine");
        let cache_dir = tempfile::tempdir().expect("tmp");
        let cache = ArtifactCache::new(cache_dir.path());
        let settings = EmbeddingSettings { provider: ProviderKind::LocalMinilm, ..EmbeddingSettings::default() };
        let before = rss_mib();
        let t = Instant::now();
        let e = Embedder::load(&engine, &cache, settings.clone(), data.path()).await.expect("load");
        println!("component compile + verify + instantiate + load weights (cold cache): {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let e2 = Embedder::load(&engine, &cache, settings, data.path()).await.expect("load");
        println!("the same with the compiled artifact cached: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
        drop(e2);
        let short = "Fix the failing login test in the authentication service".to_string();
        let mut lat = Vec::new();
        for i in 0..110 {
            let t = Instant::now();
            e.embed(std::slice::from_ref(&short)).await.expect("embed");
            if i >= 10 {
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        lat.sort_by(f64::total_cmp);
        println!("component one short text (12 tokens): p50 {:.1} ms, p99 {:.1} ms", lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
        let texts: Vec<String> = (0..32)
            .map(|i| format!("{short} number {i} with a few more words to vary the length {}", "x ".repeat(i % 7)))
            .collect();
        e.embed(&texts).await.expect("warm");
        let t = Instant::now();
        let rounds = 5;
        for _ in 0..rounds {
            e.embed(&texts).await.expect("embed");
        }
        let s = t.elapsed().as_secs_f64();
        println!("component batches of 32: {:.0} texts/s", (rounds * 32) as f64 / s);
        println!("added RSS with the model loaded: {:.0} MiB", rss_mib() - before);
    });
}
