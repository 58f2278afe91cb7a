//! The start-up rebuild of the search index and summaries from fjall.
//!
//! It reads a snapshot taken under the writer lock, newest episode first,
//! merging each header with its steps (both keyspaces sort by episode id),
//! and applies what it read in chunks, so queries run in between and cover
//! the newest `indexed` of `total` episodes (`coverage.rs`). Writes
//! made meanwhile go to the live index as usual; an episode the write path
//! re-indexes or deletes during the rebuild is skipped by it, and a summary
//! written meanwhile is never replaced by the snapshot's older one.

use std::sync::atomic::Ordering;
use std::time::Instant;

use fjall::Readable as _;
use uuid::Uuid;

use super::documents::{StepWords, completion_text, header_text};
use super::keys::id_key;
use super::model::EpisodeHeader;
use super::episode_store::{ANALYSIS_BACKFILL_KEY, EpisodeStore, Result, StoreError, Summary, decode, summary};
use super::text::tokenize;

/// Episodes read between two applications to the live index.
const CHUNK: usize = 2_000;

/// One episode's document, prepared outside the locks.
struct Prepared {
    id: Uuid,
    domain: String,
    task_type: u8,
    tokens: Vec<String>,
    summary: Summary,
}

impl EpisodeStore {
    /// Rebuilds the search index and summaries (see the module docs), and
    /// queues for analysis, once, the completed episodes of a store from
    /// before the analysis queue existed.
    pub(super) fn build_index(&self) -> Result<()> {
        self.build_index_from(self.build_snapshot())
    }

    /// The snapshot a rebuild reads, taken under the writer lock. A
    /// background rebuild takes it before the store is handed out: a write
    /// made afterwards is indexed by the write path alone (steps and
    /// completions add their words incrementally), never by both.
    pub(super) fn build_snapshot(&self) -> fjall::Snapshot {
        let _w = self.lock();
        self.db.snapshot()
    }

    /// [`EpisodeStore::build_index`] over `snap`.
    pub(super) fn build_index_from(&self, snap: fjall::Snapshot) -> Result<()> {
        let started = Instant::now();
        // An estimate at once, then the exact count.
        self.build.total.store(self.episodes.approximate_len() as u64, Ordering::Relaxed);
        let total = snap.len(&self.episodes)? as u64;
        self.build.total.store(total, Ordering::Relaxed);
        let backfill = self.meta.get(ANALYSIS_BACKFILL_KEY)?.is_none();
        let mut queue = self.db.batch();
        let mut steps = snap.iter(&self.steps).rev();
        // The next step not yet matched to a header: (episode, words).
        let mut pending: Option<(Uuid, StepWords)> = None;
        let mut chunk = Vec::with_capacity(CHUNK);
        for kv in snap.iter(&self.episodes).rev() {
            let (_, v) = kv.into_inner()?;
            let h: EpisodeHeader = decode("episodes", &v)?;
            if backfill && h.is_complete() {
                queue.insert(&self.analysis_queue, id_key(&h.episode_id), []);
            }
            let mut tokens = tokenize(&header_text(&h));
            tokens.extend(tokenize(&completion_text(&h)));
            loop {
                if pending.is_none() {
                    let Some(kv) = steps.next() else { break };
                    let (k, v) = kv.into_inner()?;
                    let Some(id) = k.get(..16).and_then(|b| Uuid::from_slice(b).ok()) else {
                        return Err(StoreError::Corrupt { keyspace: "steps", detail: "short key".into() });
                    };
                    // Only the searchable fields: no timestamps or parameters parsed.
                    pending = Some((id, decode("steps", &v)?));
                }
                match &pending {
                    // A step without a header (newer than this one): skipped.
                    Some((id, _)) if *id > h.episode_id => pending = None,
                    Some((id, s)) if *id == h.episode_id => {
                        tokens.extend(tokenize(&s.text()));
                        pending = None;
                    }
                    _ => break,
                }
            }
            chunk.push(Prepared {
                id: h.episode_id,
                domain: h.domain.clone(),
                task_type: h.task_type.code(),
                tokens,
                summary: summary(&h, self.intern(&h.domain)),
            });
            if chunk.len() == CHUNK {
                self.apply(std::mem::take(&mut chunk));
            }
        }
        self.apply(chunk);
        if backfill {
            queue.insert(&self.meta, ANALYSIS_BACKFILL_KEY, "1");
            queue.commit()?;
            self.sync()?;
        }
        crate::sync::write(&self.text).shrink_to_fit();
        crate::sync::write(&self.summaries).shrink_to_fit();
        self.build.finish();
        // The snapshot's blocks and the chunks' token lists are freed.
        super::heap::release_free_memory();
        tracing::info!(episodes = total, millis = started.elapsed().as_millis() as u64, "search index rebuilt");
        Ok(())
    }

    fn apply(&self, chunk: Vec<Prepared>) {
        let n = chunk.len() as u64;
        {
            let skip = crate::sync::lock(&self.build.skip);
            let mut text = crate::sync::write(&self.text);
            let mut sums = crate::sync::write(&self.summaries);
            for p in chunk {
                if skip.contains(&p.id) {
                    continue;
                }
                text.set_attributes(p.id, &p.domain, p.task_type);
                text.add_tokens(p.id, p.tokens);
                sums.insert_absent(p.id, p.summary);
            }
        }
        self.build.indexed.fetch_add(n, Ordering::Relaxed);
    }

    /// Blocks until the start-up rebuild of the search index has finished.
    pub fn wait_indexed(&self) {
        self.build.wait();
    }
}
