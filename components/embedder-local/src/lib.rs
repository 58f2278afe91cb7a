//! The local embedder: deterministic text embeddings with no model weights
//! and no network.
//!
//! Each text becomes a bag of features (words after light stemming, pairs
//! of neighbouring words, and character trigrams of each word), weighted
//! sublinearly by count (`1 + ln tf`), hashed with a sign into `dims`
//! buckets, and L2-normalised. Texts sharing words, word stems or spelling
//! fragments come out close; synonyms with no letters in common do not.
//!
//! ```
//! let a = embedder_local::embed("fix the failing login test", 384);
//! let b = embedder_local::embed("fixing a failed login test", 384);
//! let c = embedder_local::embed("plot quarterly revenue chart", 384);
//! let cos = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
//! assert!(cos(&a, &b) > 0.6 && cos(&a, &c) < 0.2);
//! ```

mod features;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI export glue
mod component;

pub use features::{MODEL, embed, embed_into};

/// Dimensions when the configuration does not ask for others.
pub const DEFAULT_DIMENSIONS: u32 = 384;
/// The dimensions a caller may ask for.
pub const DIMENSIONS: std::ops::RangeInclusive<u32> = 32..=4096;
/// The most texts one call takes.
pub const MAX_BATCH: u32 = 4096;
/// Longer texts are embedded from their first this many bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
