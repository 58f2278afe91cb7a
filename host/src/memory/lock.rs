//! The data dir's own lock, taken before anything else at start-up.
//!
//! Opening the episode store (fjall replays its journal) takes tens to
//! hundreds of milliseconds, and the server answers `initialize` and
//! `tools/list` before it is done. A second server on the same data dir
//! must still be refused at once, with the same message as before, so the
//! directory is claimed first with an advisory lock on a file of its own
//! (fjall's lock is on its own file and is taken later, by the open).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let held = memory_mcp::memory::DataDirLock::acquire(dir.path()).unwrap();
//! assert!(memory_mcp::memory::DataDirLock::acquire(dir.path()).is_err());
//! drop(held);
//! assert!(memory_mcp::memory::DataDirLock::acquire(dir.path()).is_ok());
//! ```

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::StoreError;

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "memory-mcp.lock";

/// Held while the server runs; released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Claims `data_dir` (creating it), or says that another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let io = |e| StoreError::Storage(fjall::Error::Io(e));
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join(LOCK_FILE)).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked(data_dir.to_path_buf())),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}
