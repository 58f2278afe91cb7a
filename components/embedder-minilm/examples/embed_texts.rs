//! Embeds texts natively with the component's own candle code, for
//! offline evaluations (`scripts/quality-rerank.py`): reads a JSON array
//! of strings on stdin and prints a JSON array of 384-dimension vectors,
//! in order, on stdout. The model directory is `MINILM_DIR` (an installed
//! `all-minilm-l6-v2`, e.g. `<data dir>/models/all-minilm-l6-v2` after
//! `memory-mcp model install`). Run:
//! `MINILM_DIR=... cargo run --release -p embedder-minilm --example embed_texts < texts.json > vectors.json`.

use std::io::Read;

use embedder_minilm::Model;

fn main() {
    if let Err(e) = run() {
        eprintln!("embed_texts: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let dir = std::env::var_os("MINILM_DIR").ok_or("set MINILM_DIR to an installed all-minilm-l6-v2 directory")?;
    let model = Model::load(std::path::Path::new(&dir)).map_err(|e| e.to_string())?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("stdin: {e}"))?;
    let texts: Vec<String> = serde_json::from_str(&input).map_err(|e| format!("stdin is not a JSON array of strings: {e}"))?;
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(model.embed(&refs).map_err(|e| e.to_string())?);
    }
    println!("{}", serde_json::to_string(&out).map_err(|e| e.to_string())?);
    Ok(())
}
