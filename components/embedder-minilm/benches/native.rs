//! The same candle code as the component, compiled natively (default
//! target features): texts per second for one short text and for batches
//! of 32, on the current thread. `scripts/bench-minilm.sh` runs it beside
//! the component's benchmark (`host/benches/minilm.rs`) with
//! `RAYON_NUM_THREADS=1`. The model directory is `MINILM_DIR`.

use std::time::Instant;

use embedder_minilm::Model;

fn main() {
    let Some(dir) = std::env::var_os("MINILM_DIR") else {
        eprintln!("set MINILM_DIR to an installed all-minilm-l6-v2 directory");
        std::process::exit(2);
    };
    let t = Instant::now();
    let model = match Model::load(std::path::Path::new(&dir)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("native load: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    let short = "Fix the failing login test in the authentication service";
    let mut lat = Vec::new();
    for i in 0..60 {
        let t = Instant::now();
        let _ = model.embed(&[short]);
        if i >= 10 {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    println!("native one short text: p50 {:.1} ms, p99 {:.1} ms", lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
    let texts: Vec<String> = (0..32).map(|i| format!("{short} number {i} with a few more words to vary the length {}", "x ".repeat(i % 7))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let _ = model.embed(&refs);
    let t = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        let _ = model.embed(&refs);
    }
    let s = t.elapsed().as_secs_f64();
    println!("native batches of 32: {:.0} texts/s", (rounds * 32) as f64 / s);
}
