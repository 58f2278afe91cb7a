//! Whether the process is on its way out. Once the client has gone, work
//! still in flight (a background compile, a loader) fails because the
//! runtime is being torn down; that is expected, so it is logged at debug
//! instead of alarming the user at ERROR.
//!
//! ```
//! assert!(!memory_mcp::shutdown::in_progress());
//! memory_mcp::shutdown::begin();
//! assert!(memory_mcp::shutdown::in_progress());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Marks the process as shutting down.
pub fn begin() {
    STOPPING.store(true, Ordering::Release);
}

/// Whether [`begin`] was called.
pub fn in_progress() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Logs that `what` failed: at ERROR while serving, at debug once the
/// process is shutting down (the failure is then the shutdown's doing).
pub fn failed(what: &str, error: &str) {
    if in_progress() {
        tracing::debug!(error, "{what} stopped by the shutdown");
    } else {
        tracing::error!(error, "{what}");
    }
}
