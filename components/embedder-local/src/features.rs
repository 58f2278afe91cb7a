//! Text to features to a hashed, signed, L2-normalised vector.

/// The model name this embedder reports.
pub const MODEL: &str = "hashed-ngrams-v1";

/// Weights of the feature families, before the per-count weighting.
const WORD: f32 = 1.0;
const PAIR: f32 = 0.5;
/// Spread over a word's trigrams, so long words do not outweigh short ones.
const TRIGRAMS: f32 = 0.8;

/// Words too common to say anything about a task.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "its", "of", "on", "or",
    "so", "that", "the", "this", "to", "was", "were", "with",
];

/// One feature: its hash and weight for one occurrence.
#[derive(Clone, Copy)]
struct Feature {
    hash: u64,
    weight: f32,
}

/// FNV-1a over `bytes`, seeded per feature family so a word and a trigram
/// with the same letters land apart.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche so nearby inputs spread over the buckets.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Strips a few English suffixes so `fixing`, `fixed` and `fixes` meet.
fn stem(word: &str) -> &str {
    for (suffix, min_len) in [("ing", 6), ("ed", 5), ("es", 5), ("s", 4)] {
        if word.len() >= min_len && word.ends_with(suffix) && !word.ends_with("ss") {
            return &word[..word.len() - suffix.len()];
        }
    }
    word
}

fn features(text: &str, out: &mut Vec<Feature>) {
    let text = match text.char_indices().nth(super::MAX_TEXT_BYTES) {
        Some((i, _)) => &text[..i],
        None => text,
    };
    let lower = text.to_lowercase();
    let mut previous: Option<&str> = None;
    let mut padded = Vec::with_capacity(32);
    for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if STOPWORDS.contains(&word) {
            continue;
        }
        let s = stem(word);
        out.push(Feature { hash: fnv1a(1, s.as_bytes()), weight: WORD });
        if let Some(p) = previous {
            let mut pair = Vec::with_capacity(p.len() + s.len() + 1);
            pair.extend_from_slice(p.as_bytes());
            pair.push(b' ');
            pair.extend_from_slice(s.as_bytes());
            out.push(Feature { hash: fnv1a(2, &pair), weight: PAIR });
        }
        previous = Some(s);
        // Trigrams of `^word$` on the unstemmed word, for shared spelling.
        padded.clear();
        padded.push(b'^');
        padded.extend_from_slice(word.as_bytes());
        padded.push(b'$');
        let n = padded.len().saturating_sub(2);
        if n > 0 {
            let w = TRIGRAMS / (n as f32).sqrt();
            for g in padded.windows(3) {
                out.push(Feature { hash: fnv1a(3, g), weight: w });
            }
        }
    }
}

/// Embeds `text` into `dims` dimensions (a zero vector when it has no
/// words).
pub fn embed(text: &str, dims: u32) -> Vec<f32> {
    let mut v = vec![0.0; dims as usize];
    embed_into(text, &mut v, &mut Vec::new());
    v
}

/// Embeds `text` into `out` (its length is the dimensions), reusing
/// `scratch` between calls.
pub fn embed_into(text: &str, out: &mut [f32], scratch: &mut Vec<(u64, f32)>) {
    out.iter_mut().for_each(|x| *x = 0.0);
    if out.is_empty() {
        return;
    }
    let mut fs = Vec::with_capacity(64);
    features(text, &mut fs);
    // Count equal features: weight × (1 + ln tf).
    scratch.clear();
    scratch.extend(fs.iter().map(|f| (f.hash, f.weight)));
    scratch.sort_unstable_by_key(|(h, _)| *h);
    let dims = out.len() as u64;
    let mut i = 0;
    while i < scratch.len() {
        let (hash, weight) = scratch[i];
        let mut tf = 1u32;
        while i + (tf as usize) < scratch.len() && scratch[i + tf as usize].0 == hash {
            tf += 1;
        }
        let value = weight * (1.0 + (tf as f32).ln());
        let bucket = (hash % dims) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        out[bucket] += sign * value;
        i += tf as usize;
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_and_normalised() {
        let a = embed("Implement JWT authentication for the REST API", 384);
        assert_eq!(a, embed("Implement JWT authentication for the REST API", 384));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(embed("", 384), vec![0.0; 384]);
        assert_eq!(embed("the of and", 384), vec![0.0; 384]);
    }

    #[test]
    fn related_beat_unrelated() {
        let q = embed("add JWT authentication to the login endpoint", 384);
        let related = embed("implement token authentication for login API", 384);
        let unrelated = embed("render a bar chart of monthly sales", 384);
        assert!(cos(&q, &related) > cos(&q, &unrelated) + 0.2);
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("fixing"), "fix");
        assert_eq!(stem("fixed"), "fix");
        assert_eq!(stem("tests"), "test");
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("is"), "is");
    }

    #[test]
    fn long_text_is_capped_on_a_char_boundary() {
        let long = "é".repeat(200_000);
        let v = embed(&long, 64);
        assert!((cos(&v, &v) - 1.0).abs() < 1e-4);
    }
}
