//! Episodes on fjall: opening the store and every write. Reads over its
//! indexes are in `reads.rs`.
//!
//! Layout (one fjall `Database` in `<data dir>/episodes.fjall`):
//!
//! | keyspace    | key                                   | value                  |
//! |-------------|---------------------------------------|------------------------|
//! | `meta`      | `schema_version`                      | `"1"`                  |
//! | `episodes`  | episode id (16 bytes, UUIDv7)         | header JSON (no steps) |
//! | `steps`     | episode id ‖ step number (u32 BE)     | step JSON              |
//! | `by_domain` | domain ‖ 0x00 ‖ episode id            | empty                  |
//! | `by_type`   | task-type code (1 byte) ‖ episode id  | empty                  |
//! | `analysis_queue` | episode id                       | empty                  |
//! | `embed_queue`    | kind (1) + id                    | empty                  |
//! | `vectors`        | kind (1) + id                    | space (8) + f32 LE     |
//!
//! `analysis_queue` holds completed episodes not yet handed to the pattern
//! analyzers: the completion and its queue entry are one atomic batch, so
//! an episode is never completed without being queued, and the learning
//! worker removes the entry in the same batch that stores what it learned.
//! `embed_queue` works the same way for the embedding worker, which writes
//! an item's vector and removes its entry in one batch.
//! (The learning module keeps its own keyspaces in this database.)
//!
//! A header is written when the episode is created, updated and completed,
//! never per step: appending a step writes the step alone, and while an
//! episode is in progress its step count is the last key under its id in
//! `steps` (cached for recently used episodes: `open.rs`).
//!
//! UUIDv7 ids sort by creation time, so `episodes` is also the time index.
//! Each write is one atomic batch across keyspaces. Creates and steps are
//! flushed to the OS before they are acknowledged (they survive a process
//! crash); completion and deletion are fsynced. A write that cannot be made
//! durable is an error, and nothing is reported stored that is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use uuid::Uuid;

use super::model::{
    Episode, EpisodeHeader, MAX_PARAMETERS_BYTES, MAX_STEPS, Outcome, Step, check_context, check_description,
    check_metadata, check_outcome, check_short, check_text, invalid,
};
use super::documents::{completion_text, header_text, step_text};
use super::coverage::{Build, IndexCoverage};
use super::keys::{EPISODE_ITEM, domain_key, id_key, item_key, step_key, type_key};
use super::open::OpenSteps;
use super::text::TextIndex;
use super::completion::Completion;
pub(super) use super::store_types::decode;
use super::store_types::encode;
pub use super::store_types::{NewEpisode, NewStep, Result, SCHEMA_VERSION, StoreError, StoreOptions, StoreStats};

/// How long opening waits for the background rebuild of the search index
/// before serving without it (a small store is indexed by then).
const SYNC_BUILD_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// Stores larger than this (episodes, estimated) do not wait at all.
const SYNC_BUILD_MAX: usize = 10_000;
/// The most write-ahead journal fjall keeps before it flushes the
/// keyspaces holding the oldest of it (fjall's default is 512 MiB, and 64
/// MiB its least). Opening the store replays what is kept, ≈ 4 ms per MB
/// on this project's machine, before any request that needs the store is
/// served, so this bounds that wait.
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// Set once every completed episode has been queued for analysis.
pub(super) const ANALYSIS_BACKFILL_KEY: &str = "analysis_backfill";

pub use super::summaries::Summary;

/// The fjall episode store: headers, steps, the summaries sorting and
/// filtering use, and the word index.
pub struct EpisodeStore {
    pub(super) options: StoreOptions,
    pub(super) path: PathBuf,
    pub(super) db: Database,
    pub(super) meta: Keyspace,
    pub(super) episodes: Keyspace,
    pub(super) steps: Keyspace,
    pub(super) by_domain: Keyspace,
    pub(super) by_type: Keyspace,
    pub(super) analysis_queue: Keyspace,
    /// Items (episodes, patterns) waiting to be embedded.
    pub(super) embed_queue: Keyspace,
    /// One vector per item, tagged with the embedding space it belongs to.
    pub(super) vectors: Keyspace,
    /// Serialises writers: each write reads a header and writes it back.
    pub(super) write: Mutex<()>,
    pub(super) text: RwLock<TextIndex>,
    pub(super) summaries: RwLock<super::summaries::Summaries>,
    /// One copy of each domain name the summaries refer to.
    domains: RwLock<std::collections::HashSet<Arc<str>>>,
    /// Step counts of recently used in-progress episodes (bounded; guarded
    /// by `write`).
    open_steps: Mutex<OpenSteps>,
    /// The search index's rebuild at start-up.
    pub(super) build: Build,
    pub(super) last_sync: Mutex<Option<DateTime<Utc>>>,
    /// The ids of episodes just changed (steps, completion, tags or
    /// metadata, deletion), for `resources/subscribe`; bounded: a slow
    /// reader loses the oldest.
    changed: tokio::sync::broadcast::Sender<Uuid>,
}

/// How many changed episode ids wait for a slow reader of
/// [`EpisodeStore::changes`] before the oldest are dropped.
const CHANGES_QUEUED: usize = 1024;

pub(super) fn summary(h: &EpisodeHeader, domain: Arc<str>) -> Summary {
    Summary {
        domain,
        task_type: h.task_type,
        duration_ms: h.duration_ms(),
        reward: h.reward.as_ref().map(|r| r.total),
        outcome: h.outcome.as_ref().map(|o| o.outcome_type),
    }
}

impl EpisodeStore {
    /// Opens (or creates) the store under `data_dir`, checks its schema and
    /// rebuilds the in-memory search index before returning.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// Opens the store with `options` and builds its in-memory index.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self> {
        let store = Self::open_unindexed(data_dir, options)?;
        store.build_index()?;
        Ok(store)
    }

    /// Opens the store and rebuilds the search index on a background
    /// thread, newest episodes first: the store serves at once, and
    /// queries cover what is indexed so far ([`EpisodeStore::index_coverage`]).
    pub fn open_background(data_dir: &Path, options: StoreOptions) -> Result<Arc<Self>> {
        let store = Arc::new(Self::open_unindexed(data_dir, options)?);
        let s = store.clone();
        let snap = store.build_snapshot();
        let spawned = std::thread::Builder::new().name("search-index".into()).spawn(move || {
            if let Err(e) = s.build_index_from(snap) {
                tracing::error!(error = %e, "the search index could not be rebuilt; queries cover only what was indexed");
                s.build.fail(e.to_string());
            }
        });
        if let Err(e) = spawned {
            return Err(StoreError::Storage(fjall::Error::Io(e)));
        }
        // A small store is indexed before the first request all the same.
        if store.episodes.approximate_len() <= SYNC_BUILD_MAX {
            store.build.wait_for(SYNC_BUILD_WAIT);
        }
        Ok(store)
    }

    fn open_unindexed(data_dir: &Path, options: StoreOptions) -> Result<Self> {
        let path = data_dir.join("episodes.fjall");
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Storage(fjall::Error::Io(e)))?;
        let db = match Database::builder(&path)
            .cache_size(super::heap::BLOCK_CACHE_BYTES)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .open()
        {
            Ok(db) => db,
            Err(fjall::Error::Locked) => return Err(StoreError::Locked(data_dir.to_path_buf())),
            Err(e) => return Err(e.into()),
        };
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let store = Self {
            meta: ks("meta")?,
            episodes: ks("episodes")?,
            steps: ks("steps")?,
            by_domain: ks("by_domain")?,
            by_type: ks("by_type")?,
            analysis_queue: ks("analysis_queue")?,
            embed_queue: ks("embed_queue")?,
            vectors: ks("vectors")?,
            options,
            path,
            db,
            write: Mutex::new(()),
            text: RwLock::new(TextIndex::new()),
            summaries: RwLock::new(super::summaries::Summaries::default()),
            domains: RwLock::new(std::collections::HashSet::new()),
            open_steps: Mutex::new(OpenSteps::default()),
            build: Build::default(),
            last_sync: Mutex::new(None),
            changed: tokio::sync::broadcast::channel(CHANGES_QUEUED).0,
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<()> {
        match self.meta.get("schema_version")? {
            Some(v) => {
                let found = String::from_utf8_lossy(&v).into_owned();
                if found != SCHEMA_VERSION.to_string() {
                    return Err(StoreError::Schema { found });
                }
            }
            None => {
                self.meta.insert("schema_version", SCHEMA_VERSION.to_string())?;
                self.sync()?;
            }
        }
        Ok(())
    }

    /// How much of the store the search index covers.
    pub fn index_coverage(&self) -> IndexCoverage {
        self.build.coverage()
    }

    pub(super) fn sync(&self) -> Result<()> {
        let mode = if self.options.sync_on_complete { PersistMode::SyncAll } else { PersistMode::Buffer };
        self.db.persist(mode).map_err(StoreError::NotDurable)?;
        *crate::sync::lock(&self.last_sync) = Some(Utc::now());
        Ok(())
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        crate::sync::lock(&self.write)
    }

    /// The header as stored (its step count is exact only once complete).
    fn stored_header(&self, id: &Uuid) -> Result<EpisodeHeader> {
        match self.episodes.get(id_key(id))? {
            Some(v) => decode("episodes", &v),
            None => Err(StoreError::NotFound(*id)),
        }
    }

    /// The header with its current step count.
    fn header(&self, id: &Uuid) -> Result<EpisodeHeader> {
        let mut h = self.stored_header(id)?;
        self.fill_step_count(&mut h)?;
        Ok(h)
    }

    /// Sets an in-progress header's step count from the cache or the tree.
    pub(super) fn fill_step_count(&self, h: &mut EpisodeHeader) -> Result<()> {
        if !h.is_complete() {
            h.step_count = self.open_step_count(&h.episode_id)?;
        }
        Ok(())
    }

    /// An in-progress episode's step count: cached, or the number of its
    /// last stored step.
    fn open_step_count(&self, id: &Uuid) -> Result<u32> {
        if let Some(n) = crate::sync::lock(&self.open_steps).get(id) {
            return Ok(n);
        }
        match self.steps.prefix(id_key(id)).next_back() {
            Some(kv) => {
                let k = kv.key()?;
                k.get(16..20)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt { keyspace: "steps", detail: "short key".into() })
            }
            None => Ok(0),
        }
    }

    fn set_open_steps(&self, id: Uuid, n: u32) {
        crate::sync::lock(&self.open_steps).set(id, n);
    }

    fn forget_open(&self, id: &Uuid) {
        crate::sync::lock(&self.open_steps).remove(id);
    }

    fn index_text(&self, id: Uuid, text: &str) {
        let tokens = super::text::tokenize(text);
        crate::sync::write(&self.text).add_tokens(id, tokens);
    }

    /// The shared copy of domain name `d`.
    pub(super) fn intern(&self, d: &str) -> Arc<str> {
        if let Some(x) = crate::sync::read(&self.domains).get(d) {
            return x.clone();
        }
        let mut set = crate::sync::write(&self.domains);
        match set.get(d) {
            Some(x) => x.clone(),
            None => {
                let x: Arc<str> = Arc::from(d);
                set.insert(x.clone());
                x
            }
        }
    }

    fn set_summary(&self, h: &EpisodeHeader) {
        let s = summary(h, self.intern(&h.domain));
        crate::sync::write(&self.summaries).insert(h.episode_id, s);
    }

    /// Checks and stores a new episode, in progress; returns its id.
    pub fn create_episode(&self, new: NewEpisode) -> Result<Uuid> {
        check_description(&new.task_description)?;
        check_short("domain", &new.domain, true)?;
        if new.domain.contains('\0') {
            return Err(invalid("domain", "must not contain NUL").into());
        }
        check_context(&new.context)?;
        check_metadata(&new.metadata)?;
        let id = Uuid::now_v7();
        let h = EpisodeHeader {
            episode_id: id,
            task_description: new.task_description,
            domain: new.domain,
            task_type: new.task_type,
            context: new.context,
            started_at: Utc::now(),
            completed_at: None,
            outcome: None,
            reward: None,
            reflection: None,
            metadata: new.metadata,
            step_count: 0,
        };
        let _w = self.lock();
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        b.insert(&self.episodes, id_key(&id), encode(&h));
        b.insert(&self.by_domain, domain_key(&h.domain, &id), []);
        b.insert(&self.by_type, type_key(h.task_type, &id), []);
        b.commit()?;
        let tokens = super::text::tokenize(&header_text(&h));
        {
            let mut text = crate::sync::write(&self.text);
            text.set_attributes(id, &h.domain, h.task_type.code());
            text.add_tokens(id, tokens);
        }
        self.set_summary(&h);
        self.set_open_steps(id, 0);
        Ok(id)
    }

    /// The ids of episodes changed from now on (see `resources/subscribe`).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.changed.subscribe()
    }

    /// Tells readers of [`EpisodeStore::changes`] (none: nothing to do).
    fn tell_changed(&self, id: Uuid) {
        let _ = self.changed.send(id);
    }

    /// Checks and appends a step; returns the episode's step count.
    pub fn add_step(&self, id: Uuid, new: NewStep) -> Result<u32> {
        check_short("tool", &new.tool, true)?;
        check_text("action", &new.action)?;
        if let Some(o) = &new.result.output {
            check_text("result.output", o)?;
        }
        if let Some(m) = &new.result.message {
            check_text("result.message", m)?;
        }
        let params_len = serde_json::to_vec(&new.parameters).map(|v| v.len()).unwrap_or(usize::MAX);
        if params_len > MAX_PARAMETERS_BYTES {
            return Err(invalid("parameters", format!("is {params_len} bytes; the limit is 64 KiB ({MAX_PARAMETERS_BYTES} bytes)")).into());
        }
        let _w = self.lock();
        // Only the step is written: the header is read (and checked) when
        // the count is not cached, and never rewritten.
        let cached = crate::sync::lock(&self.open_steps).get(&id);
        let count = match cached {
            Some(n) => n,
            None => {
                if self.stored_header(&id)?.is_complete() {
                    return Err(StoreError::Completed(id));
                }
                self.open_step_count(&id)?
            }
        };
        if count >= MAX_STEPS {
            return Err(StoreError::TooManySteps(id));
        }
        let expected = count + 1;
        if new.step_number != expected {
            return Err(StoreError::StepOrder { episode: id, expected, got: new.step_number });
        }
        let step = Step {
            step_number: new.step_number,
            // A step reported without a start time started `latency_ms` ago.
            timestamp: new.timestamp.unwrap_or_else(|| Utc::now() - chrono::Duration::milliseconds(new.latency_ms.min(i64::MAX as u64) as i64)),
            tool: new.tool,
            action: new.action,
            parameters: new.parameters,
            result: new.result,
            latency_ms: new.latency_ms,
            tokens_used: new.tokens_used,
        };
        let mut b = self.db.batch().durability(Some(PersistMode::Buffer));
        b.insert(&self.steps, step_key(&id, expected), encode(&step));
        b.commit()?;
        self.set_open_steps(id, expected);
        self.index_text(id, &step_text(&step));
        self.tell_changed(id);
        Ok(expected)
    }

    /// What the analysis of completing episode `id` with `outcome` reads:
    /// its header and all its steps. Checks what completing checks first
    /// (a valid outcome, an episode that exists and is not completed).
    pub fn completion_input(&self, id: Uuid, outcome: &Outcome) -> Result<(EpisodeHeader, Vec<Step>)> {
        check_outcome(outcome)?;
        // Under the write lock only so the header and steps agree.
        let _w = self.lock();
        let h = self.header(&id)?;
        if h.is_complete() {
            return Err(StoreError::Completed(id));
        }
        let steps = self.steps_of(&id)?;
        Ok((h, steps))
    }

    /// Completes an episode with its outcome and the analysis it was given
    /// (see [`Completion`]), and returns only once the episode is fsynced.
    /// An analysis of fewer steps than the episode now has (a step was
    /// added meanwhile) is refused with [`StoreError::StepsChanged`], and
    /// nothing is written.
    pub fn complete_episode(&self, id: Uuid, completion: impl Into<Completion>) -> Result<EpisodeHeader> {
        let Completion { outcome, judged } = completion.into();
        check_outcome(&outcome)?;
        let _w = self.lock();
        let mut h = self.header(&id)?;
        if h.is_complete() {
            return Err(StoreError::Completed(id));
        }
        let completed_at = match judged {
            Some(j) => {
                if j.steps != h.step_count {
                    return Err(StoreError::StepsChanged { episode: id, judged: j.steps, now: h.step_count });
                }
                h.reward = Some(j.reward);
                h.reflection = Some(j.reflection);
                j.completed_at
            }
            None => Utc::now(),
        };
        let before = h.clone();
        h.outcome = Some(outcome);
        h.completed_at = Some(completed_at);
        let mut b = self.db.batch();
        b.insert(&self.episodes, id_key(&id), encode(&h));
        b.insert(&self.analysis_queue, id_key(&id), []);
        b.insert(&self.embed_queue, item_key(EPISODE_ITEM, &id), []);
        // The summary (what filters and an analyzer's store view read) says
        // completed before the queues can hand the episode to a worker, so
        // no analysis sees an episode of its batch as in progress; it is
        // put back if the write fails.
        self.set_summary(&h);
        if let Err(e) = b.commit() {
            self.set_summary(&before);
            return Err(e.into());
        }
        self.forget_open(&id);
        self.sync()?;
        self.index_text(id, &completion_text(&h));
        self.tell_changed(id);
        Ok(h)
    }

    /// The episode's steps, in order.
    pub fn steps_of(&self, id: &Uuid) -> Result<Vec<Step>> {
        let mut out = Vec::new();
        for kv in self.steps.prefix(id_key(id)) {
            let (_, v) = kv.into_inner()?;
            out.push(decode("steps", &v)?);
        }
        Ok(out)
    }

    /// The episode without its steps.
    pub fn get_header(&self, id: Uuid) -> Result<EpisodeHeader> {
        self.header(&id)
    }

    /// The episode with its steps.
    pub fn get_episode(&self, id: Uuid) -> Result<Episode> {
        let header = self.header(&id)?;
        let steps = self.steps_of(&id)?;
        Ok(Episode { status: header.status(), header, steps })
    }

    /// Replaces tags and merges metadata (a `null`-like empty value removes
    /// a key).
    pub fn update_episode(&self, id: Uuid, tags: Option<Vec<String>>, metadata: Option<BTreeMap<String, String>>) -> Result<EpisodeHeader> {
        let _w = self.lock();
        let mut h = self.header(&id)?;
        if let Some(tags) = tags {
            let mut c = h.context.clone();
            c.tags = tags;
            check_context(&c)?;
            h.context = c;
        }
        if let Some(m) = metadata {
            let mut merged = h.metadata.clone();
            for (k, v) in m {
                if v.is_empty() {
                    merged.remove(&k);
                } else {
                    merged.insert(k, v);
                }
            }
            check_metadata(&merged)?;
            h.metadata = merged;
        }
        self.episodes.insert(id_key(&id), encode(&h))?;
        self.db.persist(PersistMode::Buffer)?;
        self.reindex(&h)?;
        // Also what a running rebuild, which now skips it, would have set.
        self.set_summary(&h);
        self.tell_changed(id);
        Ok(h)
    }

    /// Replaces an episode's text document (tags can remove words).
    fn reindex(&self, h: &EpisodeHeader) -> Result<()> {
        let steps = self.steps_of(&h.episode_id)?;
        // A rebuild still running must not add this episode's old words.
        self.build.skip(h.episode_id);
        let mut text = crate::sync::write(&self.text);
        text.remove(h.episode_id);
        text.set_attributes(h.episode_id, &h.domain, h.task_type.code());
        text.add(h.episode_id, &header_text(h));
        for s in &steps {
            text.add(h.episode_id, &step_text(s));
        }
        text.add(h.episode_id, &completion_text(h));
        Ok(())
    }

    /// Deletes the episode, its steps and its index entries; returns how
    /// many steps went with it.
    pub fn delete_episode(&self, id: Uuid) -> Result<u32> {
        let _w = self.lock();
        let h = self.header(&id)?;
        let mut b = self.db.batch();
        b.remove(&self.episodes, id_key(&id));
        b.remove(&self.by_domain, domain_key(&h.domain, &id));
        b.remove(&self.by_type, type_key(h.task_type, &id));
        b.remove(&self.analysis_queue, id_key(&id));
        b.remove(&self.embed_queue, item_key(EPISODE_ITEM, &id));
        b.remove(&self.vectors, item_key(EPISODE_ITEM, &id));
        for kv in self.steps.prefix(id_key(&id)) {
            b.remove(&self.steps, kv.key()?);
        }
        b.commit()?;
        self.forget_open(&id);
        self.build.skip(id);
        self.sync()?;
        crate::sync::write(&self.text).remove(id);
        crate::sync::write(&self.summaries).remove(&id);
        self.tell_changed(id);
        Ok(h.step_count)
    }
}
