//! Reads over the episode store: the domain and task-type indexes, time
//! ranges, word search, summaries, the analysis queue, and storage figures.
//! Writes and the store's life cycle are in `episode_store.rs`.

use chrono::{DateTime, Utc};
use fjall::{Database, Keyspace, PersistMode};
use uuid::Uuid;

use super::keys::{id_from_suffix, id_key, uuid_floor};
use super::summaries::RewardTotals;
use super::model::{EpisodeHeader, TaskType};
use super::episode_store::{EpisodeStore, Result, SCHEMA_VERSION, StoreStats, Summary, decode};

impl EpisodeStore {
    /// Episode ids in a domain, oldest first (from the `by_domain` index).
    pub fn ids_in_domain(&self, domain: &str) -> Result<Vec<Uuid>> {
        let mut prefix = domain.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.by_domain.prefix(prefix) {
            let k = kv.key()?;
            if let Some(id) = id_from_suffix(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Episode ids of a task type, oldest first (from the `by_type` index).
    pub fn ids_of_type(&self, t: TaskType) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for kv in self.by_type.prefix([t.code()]) {
            let k = kv.key()?;
            if let Some(id) = id_from_suffix(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Headers created at or after `since`, oldest first.
    pub fn headers_since(&self, since: Option<DateTime<Utc>>) -> Result<Vec<EpisodeHeader>> {
        let floor = since.map(uuid_floor).unwrap_or(Uuid::nil());
        let mut out = Vec::new();
        for kv in self.episodes.range(id_key(&floor)..) {
            let (_, v) = kv.into_inner()?;
            let mut h: EpisodeHeader = decode("episodes", &v)?;
            self.fill_step_count(&mut h)?;
            out.push(h);
        }
        Ok(out)
    }

    /// BM25 matches, best first: the top `limit` (all when `None`) and the
    /// number of matches.
    pub fn search_text(&self, query: &str, filter: super::text::Filter<'_>, limit: Option<usize>) -> (Vec<(Uuid, f32)>, usize) {
        crate::sync::read(&self.text).search(query, filter, limit)
    }

    /// Every stored episode's id (from the tree while the start-up
    /// rebuild of the summaries runs).
    pub fn all_ids(&self) -> Vec<Uuid> {
        if !self.build.is_ready() {
            return self.episodes.iter().filter_map(|kv| kv.key().ok().and_then(|k| Uuid::from_slice(&k).ok())).collect();
        }
        crate::sync::read(&self.summaries).keys().copied().collect()
    }

    /// `f` of each id's summary (`None` for an id no longer stored), under
    /// one read lock.
    pub fn summary_keys<T>(&self, ids: &[Uuid], f: impl Fn(&Summary) -> T) -> Vec<Option<T>> {
        let s = crate::sync::read(&self.summaries);
        ids.iter().map(|id| s.get(id).map(&f)).collect()
    }

    /// The database, for modules that keep their own keyspaces beside the
    /// episodes (and write to them in the same atomic batches).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Items waiting to be embedded (`kind + id` keys).
    pub fn embed_queue(&self) -> &Keyspace {
        &self.embed_queue
    }

    /// Stored vectors (`kind + id` keys).
    pub fn vectors(&self) -> &Keyspace {
        &self.vectors
    }

    /// The ids of every completed episode (read from the tree while the
    /// start-up rebuild of the summaries runs).
    pub fn completed_ids(&self) -> Vec<Uuid> {
        if !self.build.is_ready() {
            return self
                .episodes
                .iter()
                .filter_map(|kv| kv.into_inner().ok())
                .filter_map(|(_, v)| decode::<EpisodeHeader>("episodes", &v).ok())
                .filter(|h| h.is_complete())
                .map(|h| h.episode_id)
                .collect();
        }
        crate::sync::read(&self.summaries).iter().filter(|(_, s)| s.outcome.is_some()).map(|(id, _)| *id).collect()
    }

    /// How many episodes are completed (no disk figures, unlike `stats`).
    pub fn completed_count(&self) -> u64 {
        crate::sync::read(&self.summaries).values().filter(|x| x.outcome.is_some()).count() as u64
    }

    /// Whether `id` is a stored episode in `domain` (when given) of
    /// `task_type` (when given).
    pub fn summary_matches(&self, id: &Uuid, domain: Option<&str>, task_type: Option<TaskType>) -> bool {
        crate::sync::read(&self.summaries).get(id).is_some_and(|s| {
            domain.is_none_or(|d| &*s.domain == d) && task_type.is_none_or(|t| s.task_type == t)
        })
    }

    /// Whether `id` is a stored episode.
    pub fn contains(&self, id: &Uuid) -> bool {
        crate::sync::read(&self.summaries).contains_key(id)
    }

    /// The queue of completed episodes awaiting analysis.
    pub fn analysis_queue(&self) -> &Keyspace {
        &self.analysis_queue
    }

    /// Up to `limit` queued episode ids, oldest first.
    pub fn pending_analysis(&self, limit: usize) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for kv in self.analysis_queue.iter().take(limit) {
            let k = kv.key()?;
            if let Ok(id) = Uuid::from_slice(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Episodes waiting for analysis (counted exactly: the queue is short
    /// except right after a backfill).
    pub fn analysis_backlog(&self) -> Result<u64> {
        Ok(self.analysis_queue.len()? as u64)
    }

    /// `id`'s reward's total and the reward totals of the completed
    /// episodes comparable to it (same domain and task type), its own
    /// included: what the episode analysis turns into the reward delta
    /// against comparable episodes. `None` when `id` is not counted in them
    /// (no reward, or not yet read by the start-up rebuild).
    pub fn comparable_rewards(&self, id: &Uuid) -> Option<(f64, RewardTotals)> {
        let s = crate::sync::read(&self.summaries);
        let own = s.get(id)?;
        let reward = own.reward?;
        Some((reward, s.reward_totals(&own.domain, own.task_type)))
    }

    /// Flushes memtables into tables and syncs: every byte is then in the
    /// keyspaces' table files (for measuring, or before a backup).
    pub fn flush_to_tables(&self) -> Result<()> {
        for ks in [&self.meta, &self.episodes, &self.steps, &self.by_domain, &self.by_type, &self.analysis_queue] {
            ks.rotate_memtable_and_wait()?;
        }
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Bytes in table files (excluding the write-ahead journal).
    pub fn table_bytes(&self) -> u64 {
        [&self.meta, &self.episodes, &self.steps, &self.by_domain, &self.by_type]
            .iter()
            .map(|k| k.disk_space())
            .sum()
    }

    /// What the store holds now (episodes, completed, disk size, the
    /// rebuild's coverage), for `health_check` and `get_metrics`.
    pub fn stats(&self) -> StoreStats {
        let s = crate::sync::read(&self.summaries);
        let completed = s.values().filter(|x| x.outcome.is_some()).count() as u64;
        let index = self.index_coverage();
        // While the rebuild runs, those not yet read count as stored.
        let unread = if index.state == "building" { index.total.saturating_sub(index.indexed) } else { 0 };
        StoreStats {
            episodes: s.len() as u64 + unread,
            completed,
            in_progress: s.len() as u64 - completed,
            disk_bytes: self.db.disk_space().unwrap_or(0),
            last_sync: *crate::sync::lock(&self.last_sync),
            schema_version: SCHEMA_VERSION,
            path: self.path.display().to_string(),
            index,
        }
    }
}
