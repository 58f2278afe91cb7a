//! Vectors on fjall: `vectors[kind + id] = space (8 bytes, big-endian) +
//! f32 little-endian`, written in the same batch that removes the item's
//! `embed_queue` entry. In memory they are held as half-precision floats
//! (`f16` bits), converted here.

use std::sync::LazyLock;

use fjall::Keyspace;
use uuid::Uuid;

use super::embedder::Space;
use crate::memory::StoreError;

/// The stored value of vector `v` of `space`: the space's 8 bytes
/// (big-endian), then each value as f32 little-endian.
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

/// The stored vectors of one kind in one space, read as the index is
/// restored (streamed: never all decoded at once).
pub struct Stored {
    keyspaces: Vec<Keyspace>,
    kind: u8,
    space: Space,
    dims: usize,
}

/// Every stored vector of `kind` in `space` with `dims` dimensions, to be
/// read by [`Stored::for_each`].
pub fn load(vectors: &Keyspace, kind: u8, space: Space, dims: usize) -> Result<Stored, StoreError> {
    Ok(Stored { keyspaces: vec![vectors.clone()], kind, space, dims })
}

impl Stored {
    /// Reads `more` too (a space's vectors may be in either of the two
    /// vector keyspaces while a re-embedding is tidied).
    pub fn and(mut self, more: &Keyspace) -> Self {
        self.keyspaces.push(more.clone());
        self
    }

    /// Calls `f` with each vector's id and value, in id order within each
    /// keyspace; vectors of another space or size are left for
    /// re-embedding to replace.
    pub fn for_each(&self, mut f: impl FnMut(Uuid, Vec<f32>)) -> Result<(), StoreError> {
        for ks in &self.keyspaces {
            for kv in ks.prefix([self.kind]) {
                let (k, v) = kv.into_inner()?;
                let Some(id) = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok()) else { continue };
                match decode(&v) {
                    Some((s, vec)) if s == self.space && vec.len() == self.dims => f(id, vec),
                    Some(_) => {}
                    None => tracing::warn!(%id, "an unreadable stored vector was skipped"),
                }
            }
        }
        Ok(())
    }
}

/// `x` as IEEE half-precision bits, rounded to nearest even.
pub fn to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let mant = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (half, rem, mid) = if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1))
    } else {
        (((e as u32) << 10) | (mant >> 13), mant & 0x1fff, 0x1000)
    };
    let rounded = if rem > mid || (rem == mid && half & 1 == 1) { half + 1 } else { half };
    sign | rounded as u16
}

fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    match exp {
        0 => sign * mant as f32 * 2f32.powi(-24),
        0x1f if mant == 0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => f32::from_bits((u32::from(h & 0x8000) << 16) | ((exp + 112) << 23) | (mant << 13)),
    }
}

/// Every half-precision value as f32 (256 KiB, built once).
static F16_TABLE: LazyLock<Box<[f32]>> = LazyLock::new(|| (0..=u16::MAX).map(f16_bits_to_f32).collect());

/// Half-precision bits as f32.
pub fn from_f16(h: u16) -> f32 {
    F16_TABLE[h as usize]
}

/// The dot product of an f32 query and an f16 vector.
pub fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    let t = &**F16_TABLE;
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * t[y[i] as usize];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * t[*y as usize];
    }
    s
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

    #[test]
    fn half_precision_round_trips_within_its_precision() {
        for x in [0.0f32, -0.0, 1.0, -1.0, 0.5, 0.123_456, -0.987_654, 1e-3, 3e-5, 1e-8, 65504.0, 1e6] {
            let back = from_f16(to_f16(x));
            let tol = (x.abs() * 1e-3).max(6e-8);
            assert!((back - x).abs() <= tol || (x > 65504.0 && back.is_infinite()), "{x} -> {back}");
        }
        let q = [0.25f32, -0.5, 0.75, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let v: Vec<u16> = q.iter().map(|x| to_f16(*x)).collect();
        assert!((dot_f16(&q, &v) - q.iter().map(|x| x * x).sum::<f32>()).abs() < 1e-3);
    }
}
