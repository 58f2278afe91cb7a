//! Nearest-neighbour search over one embedding space: exact search over a
//! contiguous arena of half-precision vectors (2 bytes a dimension) while
//! the index is small, and an HNSW graph
//! (usearch) once it passes [`ANN_MIN`] vectors, whose candidates are then
//! re-scored exactly against the arena. The graph is saved beside the
//! data and brought up to date incrementally after a restart.
//!
//! Vectors are L2-normalised, so the score is the dot product: cosine
//! similarity.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::embedder::Space;
use super::vectors::{Stored, dot_f16, from_f16, to_f16};

/// Vectors from which the approximate index is built and used.
pub const ANN_MIN: usize = 20_000;
/// HNSW parameters: links per node, and the candidate lists when adding
/// and searching. Measured in `benches/embeddings.rs`.
pub const CONNECTIVITY: usize = 16;
/// The candidate list when adding a vector to the graph.
pub const EXPANSION_ADD: usize = 128;
/// The candidate list when searching the graph.
pub const EXPANSION_SEARCH: usize = 128;
/// Candidates taken from the graph per result wanted, before exact
/// re-scoring.
const OVERSAMPLE: usize = 4;

/// Why a vector could not be added to, or the index saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The vector's length is not the index's dimensions.
    #[error("vector of {got} dimensions for an index of {want}")]
    Dimensions {
        /// The vector's length.
        got: usize,
        /// The index's dimensions.
        want: usize,
    },
    /// The approximate (HNSW) index failed (usearch's message).
    #[error("approximate index: {0}")]
    Ann(String),
    /// Writing the index to disk failed.
    #[error("saving the index: {0}")]
    Io(#[from] std::io::Error),
}

/// The dot product, written so the compiler vectorises it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// The best `k` of `scored`, best first.
fn top_k(mut scored: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    if scored.len() > k && k > 0 {
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
    }
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

/// The vectors of one embedding space, held as f16: searched exactly
/// below [`ANN_MIN`] vectors, through an HNSW graph (usearch) from then on.
pub struct VectorIndex {
    /// The space every vector here belongs to.
    pub space: Space,
    dims: usize,
    /// Slot → id (`None`: removed).
    ids: Vec<Option<Uuid>>,
    /// `dims` f16 values per slot, while there is no graph: the graph
    /// keeps its own f16 copy, so once it exists the arena is dropped and
    /// vectors are read from the graph (one copy in memory).
    arena: Vec<u16>,
    slots: HashMap<Uuid, usize>,
    ann: Option<usearch::Index>,
}

fn ann_options(dims: usize) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: dims,
        metric: usearch::MetricKind::IP,
        quantization: usearch::ScalarKind::F16,
        connectivity: CONNECTIVITY,
        expansion_add: EXPANSION_ADD,
        expansion_search: EXPANSION_SEARCH,
        multi: false,
    }
}

impl VectorIndex {
    /// An empty index for `space`, of vectors of `dims` values.
    pub fn new(space: Space, dims: usize) -> Self {
        Self { space, dims, ids: Vec::new(), arena: Vec::new(), slots: HashMap::new(), ann: None }
    }

    /// The length of every vector here.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `id` has a vector here.
    pub fn contains(&self, id: &Uuid) -> bool {
        self.slots.contains_key(id)
    }

    /// Whether the HNSW graph is built (searches are approximate, re-scored
    /// exactly).
    pub fn has_ann(&self) -> bool {
        self.ann.is_some()
    }

    /// Bytes held: the arena, the id maps and the graph.
    pub fn memory_bytes(&self) -> usize {
        self.arena.capacity() * 2
            + self.ids.capacity() * 17
            + self.slots.capacity() * 32
            + self.ann.as_ref().map_or(0, usearch::Index::memory_usage)
    }

    /// Adds or replaces `id`'s vector.
    pub fn upsert(&mut self, id: Uuid, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dims {
            return Err(IndexError::Dimensions { got: v.len(), want: self.dims });
        }
        if let Some(&slot) = self.slots.get(&id) {
            if let Some(part) = self.arena.get_mut(slot * self.dims..(slot + 1) * self.dims) {
                for (a, x) in part.iter_mut().zip(v) {
                    *a = to_f16(*x);
                }
            }
            if let Some(ann) = &self.ann {
                let key = slot as u64;
                ann.remove(key).map_err(|e| IndexError::Ann(e.to_string()))?;
                add(ann, key, v)?;
            }
            return Ok(());
        }
        let slot = self.ids.len();
        self.ids.push(Some(id));
        if self.ann.is_none() {
            self.arena.extend(v.iter().map(|x| to_f16(*x)));
        }
        self.slots.insert(id, slot);
        if let Some(ann) = &self.ann {
            add(ann, slot as u64, v)?;
        }
        Ok(())
    }

    /// Removes `id`'s vector, if it has one.
    pub fn remove(&mut self, id: &Uuid) {
        if let Some(slot) = self.slots.remove(id) {
            self.ids[slot] = None;
            if let Some(ann) = &self.ann {
                let _ = ann.remove(slot as u64);
            }
        }
    }

    /// A copy of the vectors without the graph, to build one on the side.
    pub fn clone_vectors(&self) -> Self {
        Self {
            space: self.space,
            dims: self.dims,
            ids: self.ids.clone(),
            arena: self.arena.clone(),
            slots: self.slots.clone(),
            ann: None,
        }
    }

    /// Brings this copy (built from `current` earlier) up to date with
    /// `current`: slots added since are added, slots removed since are
    /// removed.
    pub fn catch_up(&mut self, current: &VectorIndex) -> Result<(), IndexError> {
        for slot in 0..self.ids.len().min(current.ids.len()) {
            if let (Some(id), None) = (self.ids[slot], current.ids[slot]) {
                self.remove(&id);
            }
        }
        for slot in self.ids.len()..current.ids.len() {
            if let Some(id) = current.ids[slot] {
                self.upsert(id, &current.vector_f32(slot))?;
            } else {
                self.ids.push(None);
                if self.ann.is_none() {
                    self.arena.extend(std::iter::repeat_n(0, self.dims));
                }
            }
        }
        Ok(())
    }

    /// Whether the approximate index should be built now.
    pub fn wants_ann(&self) -> bool {
        self.ann.is_none() && self.len() >= ANN_MIN
    }

    /// Builds the approximate index over every live vector, adding from
    /// `threads` threads.
    pub fn build_ann(&mut self, threads: usize) -> Result<(), IndexError> {
        let ann = new_ann(self.dims, self.ids.len().max(1), threads)?;
        let live: Vec<usize> = (0..self.ids.len()).filter(|s| self.ids[*s].is_some()).collect();
        let threads = threads.max(1);
        let chunk = live.len().div_ceil(threads).max(1);
        let errors: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = live
                .chunks(chunk)
                .map(|part| {
                    let ann = &ann;
                    let arena = &self.arena;
                    let dims = self.dims;
                    s.spawn(move || {
                        for &slot in part {
                            let v: Vec<f32> = arena[slot * dims..(slot + 1) * dims].iter().map(|h| from_f16(*h)).collect();
                            if let Err(e) = add(ann, slot as u64, &v) {
                                return Some(e.to_string());
                            }
                        }
                        None
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect()
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(IndexError::Ann(e));
        }
        self.ann = Some(ann);
        // The graph holds the vectors now.
        self.arena = Vec::new();
        Ok(())
    }

    /// Slot `slot`'s vector, from the arena or the graph.
    fn vector_f32(&self, slot: usize) -> Vec<f32> {
        match (&self.ann, self.arena.get(slot * self.dims..(slot + 1) * self.dims)) {
            (_, Some(part)) if !part.is_empty() => part.iter().map(|h| from_f16(*h)).collect(),
            (Some(ann), _) => {
                let mut v = vec![0f32; self.dims];
                match ann.get(slot as u64, &mut v) {
                    Ok(n) if n > 0 => v,
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// The similarity of `query` to slot `slot`'s vector (0 when it has
    /// none).
    fn score(&self, query: &[f32], slot: usize) -> f32 {
        match self.arena.get(slot * self.dims..(slot + 1) * self.dims) {
            Some(part) if !part.is_empty() => dot_f16(query, part),
            _ => {
                let v = self.vector_f32(slot);
                if v.len() == query.len() { dot(query, &v) } else { 0.0 }
            }
        }
    }

    /// The `k` most similar ids passing `keep`, best first, by exact
    /// search when small and through the graph when large.
    pub fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(&Uuid) -> bool) -> Vec<(Uuid, f32)> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        if let Some(ann) = &self.ann {
            let want = (k * OVERSAMPLE).max(40);
            let filter = |key: u64| self.ids.get(key as usize).copied().flatten().is_some_and(|id| keep(&id));
            if let Ok(m) = ann.filtered_search(query, want, filter) {
                let scored: Vec<(usize, f32)> =
                    m.keys.iter().map(|&key| (key as usize, self.score(query, key as usize))).collect();
                // A very selective filter can leave the graph short of
                // matches: then the exact search below answers.
                if scored.len() >= k.min(self.len()) {
                    return self.named(top_k(scored, k));
                }
            }
        }
        self.exact(query, k, keep)
    }

    /// Exact search: every live vector scored.
    pub fn exact(&self, query: &[f32], k: usize, keep: &dyn Fn(&Uuid) -> bool) -> Vec<(Uuid, f32)> {
        if query.len() != self.dims {
            return Vec::new();
        }
        let scored: Vec<(usize, f32)> = self
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_some_and(|id| keep(&id)))
            .map(|(slot, _)| (slot, self.score(query, slot)))
            .collect();
        self.named(top_k(scored, k))
    }

    /// Scores of the given ids (those it holds).
    pub fn scores(&self, query: &[f32], ids: impl IntoIterator<Item = Uuid>) -> HashMap<Uuid, f32> {
        ids.into_iter().filter_map(|id| self.slots.get(&id).map(|&s| (id, self.score(query, s)))).collect()
    }

    fn named(&self, scored: Vec<(usize, f32)>) -> Vec<(Uuid, f32)> {
        scored.into_iter().filter_map(|(slot, s)| self.ids[slot].map(|id| (id, s))).collect()
    }

    /// Saves the graph and its slot map under `dir` (atomically: each file
    /// is written beside and renamed). Without a graph, removes stale files.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        let (graph, slots) = files(dir, self.space);
        let Some(ann) = &self.ann else {
            let _ = std::fs::remove_file(&graph);
            let _ = std::fs::remove_file(&slots);
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let tmp = graph.with_extension("usearch.tmp");
        let tmp_str = tmp.to_str().ok_or_else(|| IndexError::Ann("the data path is not UTF-8".into()))?;
        ann.save(tmp_str).map_err(|e| IndexError::Ann(e.to_string()))?;
        let mut map = Vec::with_capacity(8 + self.ids.len() * 17);
        map.extend_from_slice(&(self.dims as u64).to_le_bytes());
        for id in &self.ids {
            match id {
                Some(id) => {
                    map.push(1);
                    map.extend_from_slice(id.as_bytes());
                }
                None => map.extend_from_slice(&[0u8; 17]),
            }
        }
        crate::wasm::write_atomic(&slots, &map).map_err(|e| IndexError::Ann(format!("{e:#}")))?;
        std::fs::rename(&tmp, &graph)?;
        Ok(())
    }

    /// Rebuilds the index of `space` from `stored` (every vector of that
    /// space in the database, streamed), reusing the saved graph under
    /// `dir` when there is one: its slots keep their places, vectors stored
    /// since are added, and vectors deleted since are removed. Returns the
    /// index and whether the graph was reused.
    pub fn restore(dir: &Path, space: Space, dims: usize, stored: Stored) -> (Self, bool) {
        let mut ix = Self::new(space, dims);
        let mut rest: Vec<(Uuid, Vec<f32>)> = Vec::new();
        let saved = load_saved(dir, space, dims);
        let reused = saved.is_some();
        let read = match saved {
            Some((ann, ids)) => {
                let saved_slots: HashMap<Uuid, usize> = ids.iter().enumerate().filter_map(|(slot, id)| id.map(|id| (id, slot))).collect();
                ix.ids = vec![None; ids.len()];
                // The graph holds the saved vectors: only ids are read for
                // them (and vectors stored since are added to it).
                let read = stored.for_each(|id, v| match saved_slots.get(&id) {
                    Some(&slot) => {
                        ix.ids[slot] = Some(id);
                        ix.slots.insert(id, slot);
                    }
                    None => rest.push((id, v)),
                });
                // Slots whose vector is gone since the save.
                for (slot, id) in ix.ids.iter().enumerate() {
                    if id.is_none() {
                        let _ = ann.remove(slot as u64);
                    }
                }
                let _ = ann.reserve(ix.ids.len() + rest.len());
                ix.ann = Some(ann);
                read
            }
            None => stored.for_each(|id, v| {
                if let Err(e) = ix.upsert(id, &v) {
                    tracing::warn!(%id, error = %e, "a stored vector was skipped");
                }
            }),
        };
        if let Err(e) = read {
            tracing::warn!(error = %e, "stored vectors could not all be read; re-embedding fills the gaps");
        }
        ix.slots.shrink_to_fit();
        for (id, v) in rest {
            if let Err(e) = ix.upsert(id, &v) {
                tracing::warn!(%id, error = %e, "a stored vector was skipped");
            }
        }
        (ix, reused)
    }
}

impl VectorIndex {
    /// Removes the graphs and slot maps saved under `dir` for any space
    /// but `keep` (spaces no longer in use).
    pub fn remove_saved_except(dir: &Path, keep: Space) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let (graph, slots) = files(dir, keep);
        for e in entries.flatten() {
            let p = e.path();
            let saved = p.extension().is_some_and(|x| x == "usearch" || x == "slots" || x == "tmp");
            if saved
                && p != graph
                && p != slots
                && p.is_file()
                && let Err(err) = std::fs::remove_file(&p)
            {
                tracing::warn!(path = %p.display(), error = %err, "an unused saved index could not be removed");
            }
        }
    }
}

fn files(dir: &Path, space: Space) -> (PathBuf, PathBuf) {
    (dir.join(format!("{space}.usearch")), dir.join(format!("{space}.slots")))
}

fn new_ann(dims: usize, capacity: usize, threads: usize) -> Result<usearch::Index, IndexError> {
    let ann = usearch::Index::new(&ann_options(dims)).map_err(|e| IndexError::Ann(e.to_string()))?;
    ann.reserve_capacity_and_threads(capacity, threads.max(1)).map_err(|e| IndexError::Ann(e.to_string()))?;
    Ok(ann)
}

fn add(ann: &usearch::Index, key: u64, v: &[f32]) -> Result<(), IndexError> {
    if ann.size() + 1 > ann.capacity() {
        let grow = (ann.capacity() * 2).max(1024);
        ann.reserve(grow).map_err(|e| IndexError::Ann(e.to_string()))?;
    }
    ann.add(key, v).map_err(|e| IndexError::Ann(e.to_string()))
}

/// The saved graph and slot map, when both are there and agree with
/// `space` and `dims`.
fn load_saved(dir: &Path, space: Space, dims: usize) -> Option<(usearch::Index, Vec<Option<Uuid>>)> {
    let (graph, slots) = files(dir, space);
    let map = std::fs::read(&slots).ok()?;
    let saved_dims = u64::from_le_bytes(map.get(..8)?.try_into().ok()?) as usize;
    if saved_dims != dims || (map.len() - 8) % 17 != 0 {
        tracing::warn!(path = %slots.display(), "saved slot map does not fit; rebuilding the approximate index");
        return None;
    }
    let ids: Vec<Option<Uuid>> = map[8..]
        .chunks_exact(17)
        .map(|c| (c[0] == 1).then(|| Uuid::from_slice(&c[1..]).ok()).flatten())
        .collect();
    let ann = usearch::Index::new(&ann_options(dims)).ok()?;
    match ann.load(graph.to_str()?) {
        Ok(()) if ann.dimensions() == dims => Some((ann, ids)),
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(path = %graph.display(), error = %e, "saved approximate index unreadable; rebuilding");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    #[test]
    fn exact_finds_itself_and_respects_filters() {
        let space = Space(1);
        let mut ix = VectorIndex::new(space, 16);
        let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            ix.upsert(*id, &unit(i as u64, 16)).unwrap_or_else(|e| panic!("{e}"));
        }
        let hits = ix.search(&unit(7, 16), 3, &|_| true);
        assert_eq!(hits[0].0, ids[7]);
        assert!((hits[0].1 - 1.0).abs() < 2e-3);
        let hits = ix.search(&unit(7, 16), 3, &|id| *id != ids[7]);
        assert!(hits.iter().all(|(id, _)| *id != ids[7]));
        ix.remove(&ids[7]);
        assert_eq!(ix.len(), 99);
        assert!(ix.search(&unit(7, 16), 1, &|_| true)[0].0 != ids[7]);
        assert!(ix.upsert(ids[0], &[0.0; 3]).is_err());
    }

    #[test]
    fn graph_survives_save_and_restore() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let space = Space(2);
        let mut ix = VectorIndex::new(space, 32);
        let ids: Vec<Uuid> = (0..2000).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            ix.upsert(*id, &unit(i as u64, 32)).unwrap_or_else(|e| panic!("{e}"));
        }
        ix.build_ann(2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ix.search(&unit(5, 32), 1, &|_| true)[0].0, ids[5]);
        ix.save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        // After the save: one deleted, one added.
        let db = fjall::Database::builder(dir.path().join("db")).open().unwrap_or_else(|e| panic!("{e}"));
        let ks = db.keyspace("vectors", fjall::KeyspaceCreateOptions::default).unwrap_or_else(|e| panic!("{e}"));
        let put = |id: &Uuid, v: &[f32]| {
            ks.insert(crate::memory::item_key(0, id), super::super::vectors::encode(space, v)).unwrap_or_else(|e| panic!("{e}"))
        };
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 5) {
            put(id, &unit(i as u64, 32));
        }
        let extra = Uuid::now_v7();
        put(&extra, &unit(99_999, 32));
        let stored = super::super::vectors::load(&ks, 0, space, 32).unwrap_or_else(|e| panic!("{e}"));
        let (back, reused) = VectorIndex::restore(dir.path(), space, 32, stored);
        assert!(reused && back.has_ann());
        assert_eq!(back.len(), 2000);
        assert_eq!(back.search(&unit(99_999, 32), 1, &|_| true)[0].0, extra);
        assert!(back.search(&unit(5, 32), 5, &|_| true).iter().all(|(id, _)| *id != ids[5]));
        assert_eq!(back.search(&unit(6, 32), 1, &|_| true)[0].0, ids[6]);
    }
}
