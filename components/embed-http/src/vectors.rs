//! The contract every provider's answer must meet.

use super::Failure;

/// L2-normalises `v` in place (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// One finite vector per text, all of one length; normalised on return.
pub fn check_batch(texts: usize, mut vectors: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, Failure> {
    if vectors.len() != texts {
        return Err(Failure::BadResponse(format!("{} vectors for {texts} texts", vectors.len())));
    }
    let dims = vectors.first().map_or(0, Vec::len);
    if texts > 0 && dims == 0 {
        return Err(Failure::BadResponse("empty vectors".into()));
    }
    for v in &mut vectors {
        if v.len() != dims {
            return Err(Failure::BadResponse(format!("vectors of {} and {dims} dimensions in one answer", v.len())));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Failure::BadResponse("a vector holds a non-finite number".into()));
        }
        normalise(v);
    }
    Ok(vectors)
}

/// Parses a JSON array of numbers.
pub fn parse_vector(v: &serde_json::Value) -> Result<Vec<f32>, Failure> {
    v.as_array()
        .ok_or_else(|| Failure::BadResponse("an embedding is not an array".into()))?
        .iter()
        .map(|x| {
            x.as_f64().map(|f| f as f32).ok_or_else(|| Failure::BadResponse("an embedding holds a non-number".into()))
        })
        .collect()
}
