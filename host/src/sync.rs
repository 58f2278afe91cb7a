//! Lock helpers, the one place that recovers from lock poisoning: a
//! poisoned lock (a thread panicked while holding it) is
//! taken over rather than propagated. Every lock here guards state that
//! stays consistent between statements, so the data is still good, and a
//! panic in one request must not take every later request down with it.
//!
//! ```
//! let m = std::sync::Mutex::new(1);
//! *memory_mcp::sync::lock(&m) += 1;
//! assert_eq!(*memory_mcp::sync::lock(&m), 2);
//! ```

use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult};
use std::time::Duration;

/// Locks `m`, recovering it if poisoned.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks `l`, recovering it if poisoned.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks `l`, recovering it if poisoned.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `cv`, releasing `guard` meanwhile, and recovers the lock if
/// poisoned.
pub fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|p| p.into_inner())
}

/// [`wait`], for at most `timeout`.
pub fn wait_timeout<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout(guard, timeout).unwrap_or_else(|p| p.into_inner())
}
