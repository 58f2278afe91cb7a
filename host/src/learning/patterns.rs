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

use super::model::{PatternKind, StoredPattern};
use crate::memory::model::{OutcomeType, TaskType};
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
    map: FxHashMap<Uuid, StoredPattern>,
    text: TextIndex,
    by_domain: FxHashMap<String, Vec<Uuid>>,
}

impl Inner {
    fn index(&mut self, p: &StoredPattern) {
        let domain = p.domain.as_deref().unwrap_or("");
        self.text.set_attributes(p.pattern_id, domain, p.task_type.map(TaskType::code).unwrap_or(NO_TASK_TYPE));
        self.text.add(p.pattern_id, &p.search_text());
        self.by_domain.entry(domain.to_string()).or_default().push(p.pattern_id);
    }
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
                inner.map.insert(p.pattern_id, p);
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

    /// Merges `learned` into the stored records (same id: evidence adds up)
    /// and removes `processed` from the analysis queue, in one batch. The
    /// merge and the commit run under the writers' lock only; the records'
    /// write lock is taken for the in-memory update at the end.
    pub fn apply(&self, learned: Vec<StoredPattern>, processed: &[Uuid]) -> Result<Applied> {
        let _writer = self.writer()?;
        let mut touched: HashMap<Uuid, StoredPattern> = HashMap::new();
        let mut fresh: Vec<Uuid> = Vec::new();
        let mut applied = Applied::default();
        {
            let inner = crate::sync::read(&self.inner);
            for p in learned {
                let id = p.pattern_id;
                if let Some(t) = touched.get_mut(&id) {
                    t.absorb(p);
                    applied.merged += 1;
                } else if let Some(old) = inner.map.get(&id) {
                    let mut t = old.clone();
                    t.absorb(p);
                    touched.insert(id, t);
                    applied.merged += 1;
                } else {
                    fresh.push(id);
                    touched.insert(id, p);
                    applied.new += 1;
                }
            }
        }
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        for p in touched.values() {
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
        for id in fresh {
            if let Some(p) = touched.get(&id) {
                inner.index(p);
            }
        }
        inner.map.extend(touched);
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
        self.read().map.get(id).cloned()
    }

    /// Records feedback on `id` and returns the updated record.
    pub fn record_feedback(&self, id: Uuid, applied: bool, outcome: OutcomeType, reward_delta: Option<f64>) -> Result<Option<StoredPattern>> {
        let (_writer, mut inner) = self.write()?;
        let Some(p) = inner.map.get_mut(&id) else { return Ok(None) };
        p.record_feedback(applied, outcome, reward_delta);
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
            if let Some(p) = inner.map.get_mut(id) {
                p.effectiveness.times_retrieved += 1;
                b.insert(&self.patterns, id.as_bytes(), encode(p));
            }
        }
        b.commit()?;
        Ok(())
    }

    /// Records matching `keep`, cloned.
    pub fn select(&self, keep: impl Fn(&StoredPattern) -> bool) -> Vec<StoredPattern> {
        self.read().map.values().filter(|p| keep(p)).cloned().collect()
    }

    /// Scores the candidates for a query without copying them: the best
    /// `max_matches` word matches, plus every record in `domain` and every
    /// id in `extra` (the nearest by meaning), with a BM25 score of 0 when
    /// no word matched. `score` gets each record, its BM25 score and the
    /// best BM25 score, and returns what to keep.
    pub fn score_candidates<T>(
        &self,
        query: &str,
        domain: Option<&str>,
        extra: &[Uuid],
        max_matches: usize,
        score: impl Fn(&StoredPattern, f32, f32) -> Option<T>,
    ) -> Vec<T> {
        let inner = self.read();
        let (hits, _) = inner.text.search(query, Filter::default(), Some(max_matches));
        let best = hits.first().map(|h| h.1).unwrap_or(0.0);
        let in_domain = domain.and_then(|d| inner.by_domain.get(d)).map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::with_capacity(hits.len());
        let most = hits.len() + in_domain.len() + extra.len();
        let mut seen: FxHashSet<Uuid> = FxHashSet::with_capacity_and_hasher(most, Default::default());
        for (id, bm25) in hits {
            seen.insert(id);
            if let Some(t) = inner.map.get(&id).and_then(|p| score(p, bm25, best)) {
                out.push(t);
            }
        }
        for id in in_domain.iter().chain(extra) {
            if seen.insert(*id)
                && let Some(t) = inner.map.get(id).and_then(|p| score(p, 0.0, best))
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
        for p in self.read().map.values() {
            *c.entry(p.kind).or_default() += 1;
        }
        c
    }
}
