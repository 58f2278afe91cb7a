//! The same candle code as the component, compiled natively (default
//! target features), on the current thread: the load, one short text
//! (p50/p99) and batches of 32 (texts/s), with exactly the component
//! benchmark's texts and counts (`host/benches/shared/minilm_texts.rs`).
//! `scripts/bench-minilm.sh` runs it alternately with the component's
//! benchmark (`host/benches/minilm.rs`), both with `RAYON_NUM_THREADS=1`.
//! The model directory is `MINILM_DIR`. Figures are printed as
//! `native <what>: <value>`.

use std::time::Instant;

use embedder_minilm::Model;

#[path = "../../../host/benches/shared/minilm_texts.rs"]
mod minilm_texts;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

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
    println!("native load, ms: {:.0}", ms(t));
    let fail = |e: embedder_minilm::Error| -> ! {
        eprintln!("{e}");
        std::process::exit(1)
    };
    let mut lat = Vec::new();
    for i in 0..minilm_texts::WARM + minilm_texts::CALLS {
        let t = Instant::now();
        model.embed(&[minilm_texts::SHORT]).unwrap_or_else(|e| fail(e));
        if i >= minilm_texts::WARM {
            lat.push(ms(t));
        }
    }
    let (p50, p99) = minilm_texts::p50_p99(&mut lat);
    println!("native one short text p50 ms: {p50:.1}");
    println!("native one short text p99 ms: {p99:.1}");
    let texts = minilm_texts::batch();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed(&refs).unwrap_or_else(|e| fail(e));
    let t = Instant::now();
    for _ in 0..minilm_texts::ROUNDS {
        model.embed(&refs).unwrap_or_else(|e| fail(e));
    }
    let per_s = (minilm_texts::ROUNDS * texts.len()) as f64 / t.elapsed().as_secs_f64();
    println!("native batches of 32 texts/s: {per_s:.1}");
}
