//! The step counters of in-progress episodes, so appending a step reads
//! nothing from the tree and writes only the step.
//!
//! Headers are not cached here: fjall's block cache already holds the hot
//! ones, and a header can be large. What is kept is fixed-size (an id and
//! a counter), least recently used first out, within [`OPEN_CACHE_BYTES`].
//! An evicted entry loses nothing: the tree holds the header and the
//! steps, and the next append of that episode recounts from them.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use uuid::Uuid;

/// Heap the cache may use.
pub const OPEN_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Bytes an entry costs: the map slot (id, counter, tick, hash-table
/// control) and its slot in the recency index (a B-tree entry).
pub const ENTRY_BYTES: usize = 16 + 4 + 8 + 8 + 16 + 8 + 16;

/// The step counters of in-progress episodes, bounded to
/// [`OPEN_CACHE_BYTES`], least recently used evicted first.
#[derive(Debug)]
pub struct OpenSteps {
    counts: HashMap<Uuid, (u32, u64)>,
    by_use: BTreeMap<u64, Uuid>,
    tick: u64,
    capacity: usize,
}

impl Default for OpenSteps {
    fn default() -> Self {
        Self::with_bytes(OPEN_CACHE_BYTES)
    }
}

impl OpenSteps {
    /// A cache holding at most `bytes` worth of entries (at least one).
    pub fn with_bytes(bytes: usize) -> Self {
        Self { counts: HashMap::default(), by_use: BTreeMap::new(), tick: 0, capacity: (bytes / ENTRY_BYTES).max(1) }
    }

    /// The step count of `id`, when cached (and marks it used).
    pub fn get(&mut self, id: &Uuid) -> Option<u32> {
        let tick = self.next_tick();
        let (count, used) = self.counts.get_mut(id)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, *id);
        Some(*count)
    }

    /// Records `id`'s step count, evicting the least recently used entry
    /// when full.
    pub fn set(&mut self, id: Uuid, count: u32) {
        let tick = self.next_tick();
        if let Some((c, used)) = self.counts.get_mut(&id) {
            self.by_use.remove(used);
            *c = count;
            *used = tick;
            self.by_use.insert(tick, id);
            return;
        }
        while self.counts.len() >= self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else { break };
            self.counts.remove(&oldest);
        }
        self.counts.insert(id, (count, tick));
        self.by_use.insert(tick, id);
    }

    /// Forgets `id` (completed or deleted).
    pub fn remove(&mut self, id: &Uuid) {
        if let Some((_, used)) = self.counts.remove(id) {
            self.by_use.remove(&used);
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_its_bytes() {
        let mut c = OpenSteps::with_bytes(3 * ENTRY_BYTES);
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        c.set(ids[0], 1);
        c.set(ids[1], 2);
        c.set(ids[2], 3);
        assert_eq!(c.get(&ids[0]), Some(1)); // 0 is now the most recent
        c.set(ids[3], 4); // evicts 1
        assert_eq!(c.get(&ids[1]), None);
        assert_eq!((c.get(&ids[0]), c.get(&ids[2]), c.get(&ids[3])), (Some(1), Some(3), Some(4)));
        assert!(c.counts.len() <= 3);
        c.set(ids[2], 5);
        assert_eq!(c.get(&ids[2]), Some(5));
        c.remove(&ids[2]);
        assert_eq!((c.get(&ids[2]), c.counts.len()), (None, 2));
    }
}
