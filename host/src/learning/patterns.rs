//! Learned records on fjall, beside the episodes, with an in-memory copy
//! and word index for retrieval.
//!
//! | keyspace   | key                   | value               |
//! |------------|-----------------------|---------------------|
//! | `patterns` | pattern id (16 bytes) | `StoredPattern` JSON |
//!
//! What a batch taught and the removal of that batch from the analysis
//! queue are one atomic write: a crash either keeps both or neither, so an
//! episode is never counted twice or lost.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use rustc_hash::{FxHashMap, FxHashSet};
use uuid::Uuid;

use super::model::{Effectiveness, PatternKind, StoredPattern};
use crate::memory::model::TaskType;
use crate::memory::keys::{PATTERN_ITEM, item_key};
use crate::memory::text::{Filter, TextIndex};
use crate::memory::{EpisodeStore, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// Task-type code for records that have none.
const NO_TASK_TYPE: u8 = u8::MAX;

/// The records in memory. Looked up by id on every ranking (hundreds of
/// candidates per query), so with a fast hash (the ids are UUIDs).
#[derive(Default)]
struct Inner {
    map: FxHashMap<Uuid, Held>,
    text: TextIndex,
    by_domain: FxHashMap<String, Vec<Uuid>>,
    /// Each domain's number ([`CandidateView::domain`]), given on first sight.
    domain_numbers: FxHashMap<String, u32>,
}

/// A record as held, with what ranking reads of it on every candidate
/// kept beside it, so gathering a candidate does not chase its strings.
struct Held {
    pattern: StoredPattern,
    pairs: u128,
    domain: Option<u32>,
}

impl Inner {
    fn index(&mut self, p: &StoredPattern) {
        let domain = p.domain.as_deref().unwrap_or("");
        self.text.set_attributes(p.pattern_id, domain, p.task_type.map(TaskType::code).unwrap_or(NO_TASK_TYPE));
        self.text.add(p.pattern_id, &p.search_text());
        self.by_domain.entry(domain.to_string()).or_default().push(p.pattern_id);
    }

    /// Holds `p` (replacing what was held under its id).
    fn hold(&mut self, p: StoredPattern) {
        let domain = p.domain.as_deref().map(|d| match self.domain_numbers.get(d) {
            Some(n) => *n,
            None => {
                let n = self.domain_numbers.len() as u32;
                self.domain_numbers.insert(d.to_string(), n);
                n
            }
        });
        let pairs = byte_pairs(p.key.as_bytes()) | byte_pairs(p.description.as_bytes());
        self.map.insert(p.pattern_id, Held { pattern: p, pairs, domain });
    }
}

impl Held {
    fn candidate(&self) -> CandidateView<'_> {
        CandidateView { pattern: &self.pattern, pairs: self.pairs, domain: self.domain }
    }
}

/// Which byte pairs occur in `text`, hashed into 128 bits. If a word's
/// pairs are not all set in a text's, the word does not occur in it, so a
/// substring search can be skipped without changing its answer.
pub(crate) fn byte_pairs(text: &[u8]) -> u128 {
    text.windows(2).fold(0, |bits, w| {
        let pair = u32::from(w[0]) << 8 | u32::from(w[1]);
        bits | 1u128 << (pair.wrapping_mul(0x9E37_79B1) >> 25)
    })
}

/// One candidate as [`PatternStore::score_candidates`] shows it.
#[derive(Clone, Copy)]
pub(crate) struct CandidateView<'a> {
    /// The record.
    pub pattern: &'a StoredPattern,
    /// [`byte_pairs`] of its key and description together: a word whose
    /// pairs are not all in here occurs in neither.
    pub pairs: u128,
    /// Its domain as a number, the same for every record of that domain
    /// in this store (`None`: it has no domain).
    pub domain: Option<u32>,
}

/// What one `apply` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Patterns stored for the first time.
    pub new: u64,
    /// Patterns merged into one already stored (same id: evidence and counts
    /// combined).
    pub merged: u64,
}

/// One record a batch reported: its stored numbers (none when new) and
/// the batch's reports of it, first first.
#[derive(Debug, Clone)]
pub struct Merge {
    /// The record's id.
    pub id: Uuid,
    /// Its numbers as stored before the batch.
    pub stored: Option<Tally>,
    /// The batch's reports of it, in the order the analyzers made them.
    pub reports: Vec<StoredPattern>,
}

/// A record's evidence numbers and confidence, as stored and as the
/// tallies component merges them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    /// Supporting observations.
    pub sample_size: u64,
    /// Successes among them (partial successes count half).
    pub successes: f64,
    /// The share that succeeded.
    pub success_rate: f64,
    /// The confidence averaged over observations.
    pub confidence: f64,
}

impl Tally {
    /// `p`'s numbers.
    pub fn of(p: &StoredPattern) -> Self {
        Tally {
            sample_size: p.evidence.sample_size,
            successes: p.evidence.successes,
            success_rate: p.evidence.success_rate,
            confidence: p.confidence,
        }
    }

    /// Sets `p`'s numbers to these.
    pub fn set(self, p: &mut StoredPattern) {
        p.evidence.sample_size = self.sample_size;
        p.evidence.successes = self.successes;
        p.evidence.success_rate = self.success_rate;
        p.confidence = self.confidence;
    }
}

/// The learned patterns, in fjall: the analysis queue, the embedding
/// queue, and an in-memory copy with its BM25 index for rankings.
pub struct PatternStore {
    db: Database,
    patterns: Keyspace,
    queue: Keyspace,
    /// New records are queued for embedding in the batch that stores them.
    embed_queue: Keyspace,
    inner: RwLock<Inner>,
    /// Held by each writer for its whole read-merge-store-update, so
    /// writers never lose each other's changes, while `inner`'s write lock
    /// is held only for the in-memory update: readers (rankings, the
    /// embeddings worker) never wait for a batch's merge or commit.
    writer: Mutex<()>,
    /// See [`PatternStore::tallies_lock`].
    tallies: tokio::sync::Mutex<()>,
    /// `None` while the records load; then `Ok` or why they could not.
    loaded: Mutex<Option<std::result::Result<(), String>>>,
    load_done: Condvar,
}

fn decode(bytes: &[u8]) -> Result<StoredPattern> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { keyspace: "patterns", detail: e.to_string() })
}

fn encode(p: &StoredPattern) -> Vec<u8> {
    serde_json::to_vec(p).unwrap_or_default()
}

impl PatternStore {
    /// Opens the `patterns` keyspace in the episode store's database and
    /// loads it.
    pub fn open(memory: &EpisodeStore) -> Result<Self> {
        let store = Self::unloaded(memory)?;
        store.load()?;
        Ok(store)
    }

    /// Opens the keyspace and loads the records on a background thread, so
    /// a server answers before they are in memory. Every use of the records
    /// waits for the load (a few hundred milliseconds at most at start-up);
    /// if it failed, reads see no records and writes are refused with the
    /// reason, so nothing stored is overwritten by what was not read.
    pub fn open_background(memory: &EpisodeStore) -> Result<Arc<Self>> {
        let store = Arc::new(Self::unloaded(memory)?);
        let s = store.clone();
        let spawned = std::thread::Builder::new().name("patterns-load".into()).spawn(move || {
            if let Err(e) = s.load() {
                tracing::error!(error = %e, "the learned patterns could not be loaded; recommendations are empty and learning is paused");
            }
        });
        if let Err(e) = spawned {
            store.finish(Err(format!("the loader thread could not start: {e}")));
        }
        Ok(store)
    }

    fn unloaded(memory: &EpisodeStore) -> Result<Self> {
        let db = memory.database().clone();
        let patterns = db.keyspace("patterns", KeyspaceCreateOptions::default)?;
        Ok(Self {
            db,
            patterns,
            queue: memory.analysis_queue().clone(),
            embed_queue: memory.embed_queue().clone(),
            inner: RwLock::new(Inner::default()),
            writer: Mutex::new(()),
            tallies: tokio::sync::Mutex::new(()),
            loaded: Mutex::new(None),
            load_done: Condvar::new(),
        })
    }

    /// Reads every record into memory (the write lock is held meanwhile).
    fn load(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut inner = crate::sync::write(&self.inner);
        let read = (|| -> Result<()> {
            for kv in self.patterns.iter() {
                let (_, v) = kv.into_inner()?;
                let p = decode(&v)?;
                inner.index(&p);
                inner.hold(p);
            }
            Ok(())
        })();
        match read {
            Ok(()) => {
                inner.text.shrink_to_fit();
                tracing::info!(patterns = inner.map.len(), millis = started.elapsed().as_millis() as u64, "learned patterns loaded");
                drop(inner);
                self.finish(Ok(()));
                crate::memory::heap::release_free_memory();
                Ok(())
            }
            Err(e) => {
                *inner = Inner::default();
                drop(inner);
                self.finish(Err(e.to_string()));
                Err(e)
            }
        }
    }

    fn finish(&self, result: std::result::Result<(), String>) {
        *crate::sync::lock(&self.loaded) = Some(result);
        self.load_done.notify_all();
    }

    /// Waits for the load; `Err` with the reason when it failed.
    fn wait_loaded(&self) -> std::result::Result<(), String> {
        let mut loaded = crate::sync::lock(&self.loaded);
        loop {
            match &*loaded {
                Some(r) => return r.clone(),
                None => loaded = crate::sync::wait(&self.load_done, loaded),
            }
        }
    }

    /// Whether the records are in memory (`None` while loading, else the
    /// load's outcome).
    pub fn load_state(&self) -> Option<std::result::Result<(), String>> {
        crate::sync::lock(&self.loaded).clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        let _ = self.wait_loaded();
        crate::sync::read(&self.inner)
    }

    /// The writers' lock ([`PatternStore::writer`]); refused when the
    /// records could not be loaded.
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.wait_loaded().map_err(|detail| StoreError::Corrupt { keyspace: "patterns", detail })?;
        Ok(crate::sync::lock(&self.writer))
    }

    /// The records for writing, with the writers' lock.
    fn write(&self) -> Result<(std::sync::MutexGuard<'_, ()>, std::sync::RwLockWriteGuard<'_, Inner>)> {
        let writer = self.writer()?;
        Ok((writer, crate::sync::write(&self.inner)))
    }

    /// The lock held by whoever computes a record's new tallies from its
    /// current ones (a batch's merge, a feedback report) across the tallies
    /// component's call, until the result is stored: no update is lost to
    /// another. Readers and retrieval counts do not take it.
    pub async fn tallies_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.tallies.lock().await
    }

    /// Groups `learned` by record (first report first) with each record's
    /// stored evidence, for the tallies component's `merge-evidence`. Hold
    /// [`PatternStore::tallies_lock`] from here until [`PatternStore::apply`].
    pub fn plan(&self, learned: Vec<StoredPattern>) -> Vec<Merge> {
        let inner = self.read();
        let mut at: FxHashMap<Uuid, usize> = FxHashMap::default();
        let mut plan: Vec<Merge> = Vec::new();
        for p in learned {
            let id = p.pattern_id;
            match at.get(&id) {
                Some(&i) => plan[i].reports.push(p),
                None => {
                    at.insert(id, plan.len());
                    let stored = inner.map.get(&id).map(|h| Tally::of(&h.pattern));
                    plan.push(Merge { id, stored, reports: vec![p] });
                }
            }
        }
        plan
    }

    /// Stores what a batch taught, as [`PatternStore::plan`] grouped it
    /// and the tallies component merged it (`tallies[i]` for `plan[i]`),
    /// and removes `processed` from the analysis queue, in one batch. A
    /// record's descriptive fields and episode ids come from its newest
    /// report, its numbers from `tallies`; what else it holds (its
    /// effectiveness, retrieval count, first sighting) is kept. The write
    /// runs under the writers' lock; the records' write lock is taken for
    /// the in-memory update at the end.
    pub fn apply(&self, plan: Vec<Merge>, tallies: Vec<Tally>, processed: &[Uuid]) -> Result<Applied> {
        if plan.len() != tallies.len() {
            return Err(StoreError::Corrupt {
                keyspace: "patterns",
                detail: format!("{} merged tallies for {} records", tallies.len(), plan.len()),
            });
        }
        let _writer = self.writer()?;
        let mut touched: Vec<StoredPattern> = Vec::with_capacity(plan.len());
        let mut fresh: Vec<Uuid> = Vec::new();
        let mut applied = Applied::default();
        {
            let inner = crate::sync::read(&self.inner);
            for (m, t) in plan.into_iter().zip(tallies) {
                let mut reports = m.reports.into_iter();
                let mut record = match inner.map.get(&m.id) {
                    Some(old) => old.pattern.clone(),
                    None => match reports.next() {
                        Some(first) => {
                            fresh.push(m.id);
                            applied.new += 1;
                            first
                        }
                        None => continue,
                    },
                };
                for r in reports {
                    record.adopt(r);
                    applied.merged += 1;
                }
                t.set(&mut record);
                touched.push(record);
            }
        }
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        for p in &touched {
            b.insert(&self.patterns, p.pattern_id.as_bytes(), encode(p));
        }
        for id in processed {
            b.remove(&self.queue, id.as_bytes());
        }
        for id in &fresh {
            b.insert(&self.embed_queue, item_key(PATTERN_ITEM, id), []);
        }
        b.commit()?;
        let mut inner = crate::sync::write(&self.inner);
        let fresh: FxHashSet<Uuid> = fresh.into_iter().collect();
        for p in touched {
            if fresh.contains(&p.pattern_id) {
                inner.index(&p);
            }
            inner.hold(p);
        }
        Ok(applied)
    }

    /// Patterns held.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    /// Whether no pattern is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pattern with id `id`, if held (a copy).
    pub fn get(&self, id: &Uuid) -> Option<StoredPattern> {
        self.read().map.get(id).map(|h| h.pattern.clone())
    }

    /// Stores `e` as `id`'s effectiveness (all but the retrieval count,
    /// which is kept) and returns the updated record; `None` when `id` is
    /// not held. Hold [`PatternStore::tallies_lock`] from reading the
    /// effectiveness `e` was computed from until here.
    pub fn set_effectiveness(&self, id: Uuid, e: Effectiveness) -> Result<Option<StoredPattern>> {
        let (_writer, mut inner) = self.write()?;
        let Some(p) = inner.map.get_mut(&id).map(|h| &mut h.pattern) else { return Ok(None) };
        p.effectiveness = Effectiveness { times_retrieved: p.effectiveness.times_retrieved, ..e };
        let updated = p.clone();
        self.patterns.insert(id.as_bytes(), encode(&updated))?;
        self.db.persist(PersistMode::Buffer)?;
        Ok(Some(updated))
    }

    /// Counts one retrieval of each of `ids` (not fsynced: a lost count
    /// after a crash is harmless).
    pub fn mark_retrieved(&self, ids: &[Uuid]) -> Result<()> {
        let (_writer, mut inner) = self.write()?;
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        for id in ids {
            if let Some(p) = inner.map.get_mut(id).map(|h| &mut h.pattern) {
                p.effectiveness.times_retrieved += 1;
                b.insert(&self.patterns, id.as_bytes(), encode(p));
            }
        }
        b.commit()?;
        Ok(())
    }

    /// Records matching `keep`, cloned.
    pub fn select(&self, keep: impl Fn(&StoredPattern) -> bool) -> Vec<StoredPattern> {
        self.read().map.values().map(|h| &h.pattern).filter(|p| keep(p)).cloned().collect()
    }

    /// Scores the candidates for a query without copying them: the best
    /// `max_matches` word matches, plus every record in `domain` and every
    /// id in `extra` (the nearest by meaning), with a BM25 score of 0 when
    /// no word matched. `reserve` first gets the most records `score` will
    /// see (so the caller can size what it fills), then `score` gets each
    /// record, its BM25 score and the best BM25 score, and returns what to
    /// keep.
    pub(crate) fn score_candidates<T>(
        &self,
        query: &str,
        domain: Option<&str>,
        extra: &[Uuid],
        max_matches: usize,
        reserve: impl FnOnce(usize),
        score: impl Fn(CandidateView<'_>, f32, f32) -> Option<T>,
    ) -> Vec<T> {
        let inner = self.read();
        let (hits, _) = inner.text.search(query, Filter::default(), Some(max_matches));
        let best = hits.first().map(|h| h.1).unwrap_or(0.0);
        let in_domain = domain.and_then(|d| inner.by_domain.get(d)).map(Vec::as_slice).unwrap_or_default();
        let most = hits.len() + in_domain.len() + extra.len();
        reserve(most);
        let mut out = Vec::with_capacity(most);
        let mut seen: FxHashSet<Uuid> = FxHashSet::with_capacity_and_hasher(most, Default::default());
        for (id, bm25) in hits {
            seen.insert(id);
            if let Some(t) = inner.map.get(&id).and_then(|h| score(h.candidate(), bm25, best)) {
                out.push(t);
            }
        }
        for id in in_domain.iter().chain(extra) {
            if seen.insert(*id)
                && let Some(t) = inner.map.get(id).and_then(|h| score(h.candidate(), 0.0, best))
            {
                out.push(t);
            }
        }
        out
    }

    /// Every record's id.
    pub fn ids(&self) -> Vec<Uuid> {
        self.read().map.keys().copied().collect()
    }

    /// Records per kind, for `health_check`.
    pub fn counts(&self) -> HashMap<PatternKind, u64> {
        let mut c = HashMap::new();
        for p in self.read().map.values().map(|h| &h.pattern) {
            *c.entry(p.kind).or_default() += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::byte_pairs;

    #[test]
    fn a_word_in_a_text_has_all_its_pairs_set() {
        let text = byte_pairs(b"retry the flaky deploy") | byte_pairs(b"seq:ci:deploy");
        for word in ["flaky", "deploy", "ci", "retry the", "y"] {
            let pairs = byte_pairs(word.as_bytes());
            assert_eq!(text & pairs, pairs, "{word}");
        }
        // Most words that are absent are told apart without a search.
        let absent = ["payments", "inventory", "scheduler", "gateway", "ledger"];
        let told = absent.iter().filter(|w| text & byte_pairs(w.as_bytes()) != byte_pairs(w.as_bytes())).count();
        assert!(told >= 4, "{told}");
    }
}
