//! The texts and counts the MiniLM benchmarks share, so the component
//! (`host/benches/minilm.rs`) and the native build
//! (`components/embedder-minilm/benches/native.rs`, which includes this
//! file by path) embed exactly the same inputs.

#![allow(dead_code)]

/// The query text: 9 words, 11 word pieces with `[CLS]` and `[SEP]`.
pub const SHORT: &str = "Fix the failing login test in the authentication service";
/// Calls before timing starts.
pub const WARM: usize = 10;
/// Timed calls of one short text.
pub const CALLS: usize = 100;
/// Timed batches of 32.
pub const ROUNDS: usize = 6;

/// 32 texts of 17 to 29 word pieces (the batch is padded to the longest).
pub fn batch() -> Vec<String> {
    (0..32).map(|i| format!("{SHORT} number {i} with a few more words to vary the length {}", "x ".repeat(i % 7))).collect()
}

/// The median and 99th percentile of `v` (sorted in place).
pub fn p50_p99(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}
