//! The tool-call audit: every call sandboxed code makes, allowed or not,
//! persisted in fjall beside the episodes, plus per-tool usage counts that
//! order tool listings.
//!
//! | keyspace     | key                        | value                     |
//! |--------------|----------------------------|---------------------------|
//! | `tool_audit` | record id (UUIDv7, 16 B)   | [`ToolCallRecord`] JSON   |
//! | `tool_usage` | `server.tool`              | calls (u64 LE)            |
//!
//! A record and its usage count are one atomic batch, written to the
//! journal before the call's result reaches the code (so it survives a
//! process crash). The oldest records are dropped beyond `max_records`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use uuid::Uuid;

use crate::sandbox::tools::ToolCallRecord;

/// Records kept before the oldest are dropped.
pub const DEFAULT_MAX_RECORDS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit storage: {0}")]
    Storage(#[from] fjall::Error),
    #[error("corrupt audit record: {0}")]
    Corrupt(String),
}

/// Which records to read; every field set narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub execution_id: Option<Uuid>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
}

impl AuditFilter {
    fn matches(&self, r: &ToolCallRecord) -> bool {
        self.execution_id.is_none_or(|e| e == r.execution_id)
            && self.server.as_deref().is_none_or(|s| s == r.server)
            && self.tool.as_deref().is_none_or(|t| t == r.tool)
            && self.outcome.as_deref().is_none_or(|o| o == r.outcome)
    }
}

pub struct Audit {
    db: Database,
    records: Keyspace,
    usage: Keyspace,
    counts: Mutex<HashMap<String, u64>>,
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
        for item in usage.iter() {
            let (k, v) = item.into_inner()?;
            let n = <[u8; 8]>::try_from(&v[..]).map(u64::from_le_bytes).map_err(|_| {
                AuditError::Corrupt(format!("usage count for {}", String::from_utf8_lossy(&k)))
            })?;
            counts.insert(String::from_utf8_lossy(&k).into_owned(), n);
        }
        let len = records.len()? as u64;
        Ok(Self {
            db: db.clone(),
            records,
            usage,
            counts: Mutex::new(counts),
            len: AtomicU64::new(len),
            max_records: max_records.max(1),
            write: Mutex::new(()),
        })
    }

    /// Persists one record and bumps its tool's usage count.
    pub fn append(&self, record: &ToolCallRecord) -> Result<(), AuditError> {
        let value = serde_json::to_vec(record).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let key = format!("{}.{}", record.server, record.tool);
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = self.db.batch();
        batch.insert(&self.records, Uuid::now_v7().as_bytes(), value);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.get(&key).copied().unwrap_or(0) + 1;
        batch.insert(&self.usage, key.as_bytes(), n.to_le_bytes());
        batch.commit()?;
        counts.insert(key, n);
        drop(counts);
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
        for item in self.records.iter().take(n as usize) {
            batch.remove(&self.records, item.key()?);
            dropped += 1;
        }
        batch.commit()?;
        self.len.fetch_sub(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// Newest first, at most `limit`.
    pub fn read(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<ToolCallRecord>, AuditError> {
        let mut out = Vec::new();
        for item in self.records.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item.into_inner()?;
            let r: ToolCallRecord = serde_json::from_slice(&v).map_err(|e| AuditError::Corrupt(e.to_string()))?;
            if filter.matches(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Records held now.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls per `server.tool`, all time.
    pub fn usage(&self) -> HashMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
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
        }
    }

    #[test]
    fn records_persist_filter_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let exec = Uuid::now_v7();
        {
            let db = Database::builder(dir.path()).open().unwrap();
            let audit = Audit::open(&db, 3).unwrap();
            for (tool, outcome) in [("echo", "ok"), ("add", "denied"), ("echo", "ok"), ("echo", "tool_error")] {
                audit.append(&record(tool, outcome, exec)).unwrap();
            }
            assert_eq!(audit.len(), 3, "the oldest record is pruned");
            assert_eq!(audit.usage()["everything.echo"], 3);
        }
        let db = Database::builder(dir.path()).open().unwrap();
        let audit = Audit::open(&db, 3).unwrap();
        assert_eq!(audit.usage()["everything.add"], 1, "usage survives a reopen");
        let all = audit.read(&AuditFilter::default(), 10).unwrap();
        assert_eq!(all.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["tool_error", "ok", "denied"]);
        let denied = audit.read(&AuditFilter { outcome: Some("denied".into()), ..Default::default() }, 10).unwrap();
        assert_eq!(denied.len(), 1);
        let other = audit.read(&AuditFilter { execution_id: Some(Uuid::now_v7()), ..Default::default() }, 10).unwrap();
        assert!(other.is_empty());
    }
}
