//! Vectors on fjall: `vectors[kind + id] = space (8 bytes, big-endian) +
//! f32 little-endian`, written in the same batch that removes the item's
//! `embed_queue` entry.

use std::collections::HashMap;

use fjall::Keyspace;
use uuid::Uuid;

use super::embedder::Space;
use crate::memory::StoreError;

pub fn encode(space: Space, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len() * 4);
    out.extend_from_slice(&space.0.to_be_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The space and vector of a stored value.
pub fn decode(bytes: &[u8]) -> Option<(Space, Vec<f32>)> {
    let space = Space(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?));
    let body = &bytes[8..];
    if !body.len().is_multiple_of(4) {
        return None;
    }
    Some((space, body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

/// Every stored vector of `kind` in `space` with `dims` dimensions.
pub fn load(vectors: &Keyspace, kind: u8, space: Space, dims: usize) -> Result<HashMap<Uuid, Vec<f32>>, StoreError> {
    let mut out = HashMap::new();
    for kv in vectors.prefix([kind]) {
        let (k, v) = kv.into_inner()?;
        let Some(id) = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok()) else { continue };
        match decode(&v) {
            Some((s, vec)) if s == space && vec.len() == dims => {
                out.insert(id, vec);
            }
            Some(_) => {} // another space: re-embedding will replace it
            None => tracing::warn!(%id, "an unreadable stored vector was skipped"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let v = vec![0.5, -0.25, 1.0];
        assert_eq!(decode(&encode(Space(42), &v)), Some((Space(42), v)));
        assert_eq!(decode(&[1, 2, 3]), None);
    }
}
