//! How far the start-up rebuild of the search index got ([`Build`]), and
//! how much of the store queries cover ([`IndexCoverage`]): the state the
//! rebuild (`build.rs`), the write path and the readers share.
//!
//! ```
//! use memory_mcp::memory::IndexBuild;
//!
//! let build = IndexBuild::default();
//! assert_eq!(build.coverage().state, "building");
//! build.fail("disk gone".into());
//! assert_eq!(build.coverage().error.as_deref(), Some("disk gone"));
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

/// How much of the store the search index covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct IndexCoverage {
    /// `building`, `ready` or `failed`.
    pub state: String,
    /// Episodes indexed so far (the newest first).
    pub indexed: u64,
    /// Episodes stored when the rebuild started.
    pub total: u64,
    /// Why the rebuild stopped, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The progress of the start-up rebuild, shared by the rebuild, the write
/// path and the readers: how far it got, whether it finished or failed.
#[derive(Debug, Default)]
pub struct Build {
    pub(super) indexed: AtomicU64,
    pub(super) total: AtomicU64,
    /// `None` while building; then `Ok` or the failure.
    done: Mutex<Option<std::result::Result<(), String>>>,
    finished: Condvar,
    /// Episodes the write path re-indexed or deleted during the rebuild.
    pub(super) skip: Mutex<HashSet<Uuid>>,
}

impl Build {
    fn lock_done(&self) -> std::sync::MutexGuard<'_, Option<std::result::Result<(), String>>> {
        crate::sync::lock(&self.done)
    }

    /// Whether the rebuild finished: queries cover every episode.
    pub fn is_ready(&self) -> bool {
        matches!(*self.lock_done(), Some(Ok(())))
    }

    /// Tells a running rebuild to leave `id` alone.
    pub fn skip(&self, id: Uuid) {
        if self.lock_done().is_none() {
            crate::sync::lock(&self.skip).insert(id);
        }
    }

    /// Marks the rebuild failed with `error`, waking anyone waiting on it.
    pub fn fail(&self, error: String) {
        *self.lock_done() = Some(Err(error));
        self.finished.notify_all();
    }

    pub(super) fn finish(&self) {
        *self.lock_done() = Some(Ok(()));
        crate::sync::lock(&self.skip).clear();
        self.finished.notify_all();
    }

    /// How far the rebuild is, as `query_memory` and stats report it.
    pub fn coverage(&self) -> IndexCoverage {
        let (state, error) = match &*self.lock_done() {
            None => ("building", None),
            Some(Ok(())) => ("ready", None),
            Some(Err(e)) => ("failed", Some(e.clone())),
        };
        IndexCoverage {
            state: state.into(),
            indexed: self.indexed.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            error,
        }
    }

    /// Blocks until the rebuild has finished (or failed) or `limit` has
    /// passed.
    pub fn wait_for(&self, limit: std::time::Duration) {
        let deadline = Instant::now() + limit;
        let mut done = self.lock_done();
        while done.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            done = crate::sync::wait_timeout(&self.finished, done, left).0;
        }
    }

    /// Blocks until the rebuild has finished (or failed).
    pub fn wait(&self) {
        let mut done = self.lock_done();
        while done.is_none() {
            done = crate::sync::wait(&self.finished, done);
        }
    }
}
