//! The tool-call audit: every call sandboxed code makes, allowed or not,
//! persisted in fjall beside the episodes, plus per-tool usage counts that
//! order tool listings.
//!
//! | keyspace     | key                        | value                     |
//! |--------------|----------------------------|---------------------------|
//! | `tool_audit` | record id (UUIDv7, 16 B)   | [`ToolCallRecord`] JSON   |
//! | `tool_usage` | `server.tool`              | calls (u64 LE)            |
//! | `tool_usage_by_principal` | `principal` NUL `server.tool` | calls (u64 LE) |
//!
//! A principal sees only its own: [`Audit::usage_of`] counts its calls
//! (since per-principal counting began), [`Audit::len_of`] its records held
//! (counted by one scan at its first use, then kept up to date); the
//! operator (`local`) sees the server-wide [`Audit::usage`] and [`Audit::len`].
//!
//! A record and its usage count are one atomic batch, written to the
//! journal before the call's result reaches the code (so it survives a
//! process crash). The oldest records are dropped beyond `max_records`.
//! Usage is counted only for calls that reached a tool, so every usage key
//! names a tool that existed; keys that are not a valid `server.tool` (left
//! by older builds) are dropped at open. Reads are paged: each scans at
//! most [`MAX_SCAN`] records and says where to go on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use uuid::Uuid;

use crate::sandbox::{ToolCallRecord, call_outcome, check_tool_name};

/// Records kept before the oldest are dropped.
pub const DEFAULT_MAX_RECORDS: u64 = 100_000;

/// Records one read looks at, matching or not, before it returns a cursor.
pub const MAX_SCAN: usize = 20_000;

/// A page of records, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The records on this page, newest first.
    pub records: Vec<ToolCallRecord>,
    /// Where the next page starts (pass it back as `before`); `None` when
    /// the scan reached the oldest record.
    pub next: Option<String>,
}

/// Why the tool-call audit could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit's fjall keyspace failed.
    #[error("audit storage: {0}")]
    Storage(#[from] fjall::Error),
    /// A stored record did not decode.
    #[error("corrupt audit record: {0}")]
    Corrupt(String),
    /// A `before` cursor this audit did not hand out.
    #[error("cursor {0:?} is not one this audit gave")]
    Cursor(String),
}

/// Which records to read; every field set narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only calls of this execution.
    pub execution_id: Option<Uuid>,
    /// Only calls to this server.
    pub server: Option<String>,
    /// Only calls of this tool (its name on its server).
    pub tool: Option<String>,
    /// Only calls that ended this way (see `sandbox::call_outcome`).
    pub outcome: Option<String>,
    /// Only this principal's records (those from before principals count
    /// as `local`'s).
    pub principal: Option<String>,
}

impl AuditFilter {
    fn matches(&self, r: &ToolCallRecord) -> bool {
        self.principal
            .as_deref()
            .is_none_or(|p| p == r.principal.as_deref().unwrap_or(crate::principal::LOCAL))
            && self.execution_id.is_none_or(|e| e == r.execution_id)
            && self.server.as_deref().is_none_or(|s| s == r.server)
            && self.tool.as_deref().is_none_or(|t| t == r.tool)
            && self.outcome.as_deref().is_none_or(|o| o == r.outcome)
    }
}

/// The tool-call audit: every call code made, in fjall, bounded to the
/// newest `max_records`, with per-tool and per-principal call counts.
pub struct Audit {
    db: Database,
    records: Keyspace,
    usage: Keyspace,
    counts: Mutex<HashMap<String, u64>>,
    usage_by: Keyspace,
    /// Calls per principal, then per `server.tool`.
    counts_by: Mutex<HashMap<String, HashMap<String, u64>>>,
    /// Records held per principal, once first asked for.
    held_by: Mutex<Option<HashMap<String, u64>>>,
    len: AtomicU64,
    max_records: u64,
    /// Serialises appends so usage counts and pruning stay exact.
    write: Mutex<()>,
}

impl Audit {
    /// Opens the audit keyspaces in `db`, loading the usage counts.
    pub fn open(db: &Database, max_records: u64) -> Result<Self, AuditError> {
        let records = db.keyspace("tool_audit", KeyspaceCreateOptions::default)?;
        let usage = db.keyspace("tool_usage", KeyspaceCreateOptions::default)?;
        let mut counts = HashMap::new();
        let mut invalid = Vec::new();
        for item in usage.iter() {
            let (k, v) = item.into_inner()?;
            let name = std::str::from_utf8(&k).ok().filter(|n| {
                n.split_once('.').is_some_and(|(s, t)| check_tool_name(s, t).is_ok())
            });
            let n = <[u8; 8]>::try_from(&v[..]).map(u64::from_le_bytes);
            match (name, n) {
                (Some(name), Ok(n)) => {
                    counts.insert(name.to_string(), n);
                }
                _ => invalid.push(k),
            }
        }
        if !invalid.is_empty() {
            tracing::warn!(keys = invalid.len(), "dropping tool-usage counts whose names are not tools");
            let mut batch = db.batch();
            for k in invalid {
                batch.remove(&usage, k);
            }
            batch.commit()?;
        }
        let usage_by = db.keyspace("tool_usage_by_principal", KeyspaceCreateOptions::default)?;
        let mut counts_by: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for item in usage_by.iter() {
            let (k, v) = item.into_inner()?;
            let parsed = std::str::from_utf8(&k).ok().and_then(|k| k.split_once('\0')).filter(|(_, n)| {
                n.split_once('.').is_some_and(|(s, t)| check_tool_name(s, t).is_ok())
            });
            if let (Some((who, name)), Ok(n)) = (parsed, <[u8; 8]>::try_from(&v[..]).map(u64::from_le_bytes)) {
                counts_by.entry(who.to_string()).or_default().insert(name.to_string(), n);
            }
        }
        let len = records.len()? as u64;
        Ok(Self {
            db: db.clone(),
            records,
            usage,
            counts: Mutex::new(counts),
            usage_by,
            counts_by: Mutex::new(counts_by),
            held_by: Mutex::new(None),
            len: AtomicU64::new(len),
            max_records: max_records.max(1),
            write: Mutex::new(()),
        })
    }

    /// Persists one record and, if the call reached a tool, bumps that
    /// tool's usage count.
    pub fn append(&self, record: &ToolCallRecord) -> Result<(), AuditError> {
        let value = serde_json::to_vec(record).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let counted = call_outcome::reached_tool(&record.outcome) && check_tool_name(&record.server, &record.tool).is_ok();
        let key = format!("{}.{}", record.server, record.tool);
        let who = record.principal.as_deref().unwrap_or(crate::principal::LOCAL);
        let _w = crate::sync::lock(&self.write);
        let mut batch = self.db.batch();
        batch.insert(&self.records, Uuid::now_v7().as_bytes(), value);
        let mut counts = crate::sync::lock(&self.counts);
        let mut counts_by = crate::sync::lock(&self.counts_by);
        if counted {
            let n = counts.get(&key).copied().unwrap_or(0) + 1;
            batch.insert(&self.usage, key.as_bytes(), n.to_le_bytes());
            let mine = counts_by.get(who).and_then(|c| c.get(&key)).copied().unwrap_or(0) + 1;
            batch.insert(&self.usage_by, format!("{who}\0{key}").as_bytes(), mine.to_le_bytes());
            batch.commit()?;
            counts.insert(key.clone(), n);
            counts_by.entry(who.to_string()).or_default().insert(key, mine);
        } else {
            batch.commit()?;
        }
        drop(counts_by);
        drop(counts);
        if let Some(held) = crate::sync::lock(&self.held_by).as_mut() {
            *held.entry(who.to_string()).or_default() += 1;
        }
        let len = self.len.fetch_add(1, Ordering::Relaxed) + 1;
        if len > self.max_records {
            self.prune(len - self.max_records)?;
        }
        Ok(())
    }

    /// Drops the `n` oldest records.
    fn prune(&self, n: u64) -> Result<(), AuditError> {
        let mut batch = self.db.batch();
        let mut dropped = 0;
        let mut held = crate::sync::lock(&self.held_by);
        let mut gone: Vec<String> = Vec::new();
        for item in self.records.iter().take(n as usize) {
            let (k, v) = item.into_inner()?;
            if held.is_some() {
                gone.push(principal_of(&v));
            }
            batch.remove(&self.records, k);
            dropped += 1;
        }
        batch.commit()?;
        if let Some(held) = held.as_mut() {
            for who in gone {
                if let Some(n) = held.get_mut(&who) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        self.len.fetch_sub(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// Newest first, at most `limit`: every matching record.
    pub fn read(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<ToolCallRecord>, AuditError> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self.page(filter, limit - out.len(), before.as_deref())?;
            out.extend(page.records);
            match page.next {
                Some(next) if out.len() < limit => before = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// One page, newest first: at most `limit` matching records among the
    /// [`MAX_SCAN`] records older than the cursor `before` (from an earlier
    /// page's `next`).
    pub fn page(&self, filter: &AuditFilter, limit: usize, before: Option<&str>) -> Result<AuditPage, AuditError> {
        let upper = match before {
            Some(c) => Some(Uuid::try_parse(c).map_err(|_| AuditError::Cursor(c.chars().take(64).collect()))?),
            None => None,
        };
        let iter = match upper {
            Some(u) => self.records.range(..u.as_bytes().to_vec()),
            None => self.records.iter(),
        };
        let mut page = AuditPage::default();
        let mut last = None;
        for (scanned, item) in iter.rev().enumerate() {
            if page.records.len() >= limit || scanned >= MAX_SCAN {
                page.next = last.map(|k: Uuid| k.to_string());
                return Ok(page);
            }
            let (k, v) = item.into_inner()?;
            last = Uuid::from_slice(&k).ok();
            let r: ToolCallRecord = serde_json::from_slice(&v).map_err(|e| AuditError::Corrupt(e.to_string()))?;
            if filter.matches(&r) {
                page.records.push(r);
            }
        }
        Ok(page)
    }

    /// Records held now.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls per `server.tool`, all time.
    pub fn usage(&self) -> HashMap<String, u64> {
        crate::sync::lock(&self.counts).clone()
    }

    /// `principal`'s calls per `server.tool`.
    pub fn usage_of(&self, principal: &str) -> HashMap<String, u64> {
        crate::sync::lock(&self.counts_by).get(principal).cloned().unwrap_or_default()
    }

    /// `principal`'s records held now. The first call scans every record
    /// (blocking; at most `max_records`), later ones read a count.
    pub fn len_of(&self, principal: &str) -> Result<u64, AuditError> {
        let _w = crate::sync::lock(&self.write);
        let mut held = crate::sync::lock(&self.held_by);
        if held.is_none() {
            let mut counted: HashMap<String, u64> = HashMap::new();
            for item in self.records.iter() {
                let (_, v) = item.into_inner()?;
                *counted.entry(principal_of(&v)).or_default() += 1;
            }
            *held = Some(counted);
        }
        Ok(held.as_ref().and_then(|h| h.get(principal)).copied().unwrap_or(0))
    }
}

/// The principal of a stored record (`local` for records without one, or
/// that do not parse).
fn principal_of(value: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Who {
        principal: Option<String>,
    }
    serde_json::from_slice::<Who>(value)
        .ok()
        .and_then(|w| w.principal)
        .unwrap_or_else(|| crate::principal::LOCAL.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tool: &str, outcome: &'static str, execution_id: Uuid) -> ToolCallRecord {
        ToolCallRecord {
            at: chrono::Utc::now(),
            execution_id,
            server: "everything".into(),
            tool: tool.into(),
            args_bytes: 2,
            args_blake3: blake3::hash(b"{}").to_hex().to_string(),
            outcome: outcome.into(),
            latency_us: 10,
            error: None,
            omitted: None,
            principal: None,
        }
    }

    #[test]
    fn records_persist_filter_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let exec = Uuid::now_v7();
        {
            let db = Database::builder(dir.path()).open().unwrap();
            let audit = Audit::open(&db, 3).unwrap();
            for (tool, outcome) in [("echo", "ok"), ("add", "ok"), ("add", "denied"), ("echo", "tool_error")] {
                audit.append(&record(tool, outcome, exec)).unwrap();
            }
            assert_eq!(audit.len(), 3, "the oldest record is pruned");
            assert_eq!(audit.usage()["everything.echo"], 2);
            assert_eq!(audit.usage()["everything.add"], 1, "a refusal is not usage");
        }
        let db = Database::builder(dir.path()).open().unwrap();
        let audit = Audit::open(&db, 3).unwrap();
        assert_eq!(audit.usage()["everything.add"], 1, "usage survives a reopen");
        assert_eq!(audit.usage_of("local")["everything.add"], 1, "so does each principal's");
        assert_eq!(audit.len_of("local").unwrap(), 3);
        let all = audit.read(&AuditFilter::default(), 10).unwrap();
        assert_eq!(all.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["tool_error", "denied", "ok"]);
        let denied = audit.read(&AuditFilter { outcome: Some("denied".into()), ..Default::default() }, 10).unwrap();
        assert_eq!(denied.len(), 1);
        let other = audit.read(&AuditFilter { execution_id: Some(Uuid::now_v7()), ..Default::default() }, 10).unwrap();
        assert!(other.is_empty());
        let mut bobs = record("echo", "ok", exec);
        bobs.principal = Some("bob".into());
        audit.append(&bobs).unwrap();
        assert_eq!((audit.len_of("bob").unwrap(), audit.len_of("local").unwrap()), (1, 2), "kept up to date, pruning too");
        assert_eq!(audit.usage_of("bob").len(), 1);
        assert!(audit.usage_of("alice").is_empty());
    }

    #[test]
    fn pages_are_bounded_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let audit = Audit::open(&db, 100).unwrap();
        let exec = Uuid::now_v7();
        for i in 0..10 {
            audit.append(&record(&format!("t{i}"), "ok", exec)).unwrap();
        }
        let first = audit.page(&AuditFilter::default(), 4, None).unwrap();
        assert_eq!(first.records.len(), 4);
        assert_eq!(first.records[0].tool, "t9");
        let second = audit.page(&AuditFilter::default(), 4, first.next.as_deref()).unwrap();
        assert_eq!(second.records[0].tool, "t5");
        assert!(audit.page(&AuditFilter::default(), 4, Some("not a cursor")).is_err());
        assert_eq!(audit.read(&AuditFilter::default(), 100).unwrap().len(), 10);
    }

    #[test]
    fn usage_keys_that_are_not_tools_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::builder(dir.path()).open().unwrap();
            let usage = db.keyspace("tool_usage", KeyspaceCreateOptions::default).unwrap();
            usage.insert(format!("memory.{}", "x".repeat(60_000)), 1u64.to_le_bytes()).unwrap();
            usage.insert("memory.query_memory", 2u64.to_le_bytes()).unwrap();
        }
        let db = Database::builder(dir.path()).open().unwrap();
        let audit = Audit::open(&db, 100).unwrap();
        assert_eq!(audit.usage().len(), 1);
        assert_eq!(db.keyspace("tool_usage", KeyspaceCreateOptions::default).unwrap().len().unwrap(), 1);
    }
}
