//! Per-connection bookkeeping: a connection that has not started a request
//! within the header timeout, or that has had none in flight for the idle
//! timeout, is closed, whatever its protocol (hyper's header timeout holds
//! for HTTP/1 only; an HTTP/2 connection that answers pings and never opens
//! a stream would otherwise be held for good). Also the descriptor budget:
//! the soft `RLIMIT_NOFILE` is raised to the hard one at start and the
//! connection cap kept below it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What one connection is doing: requests in flight (a request counts from
/// its head until its response body ends or is dropped) and when the last
/// one started or ended.
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the last start or end of a request;
    /// `u64::MAX` until the first request.
    last_ms: AtomicU64,
}

/// Held while a request is in flight on its connection.
pub struct Active(Arc<Activity>);

impl Active {
    /// Keeps the guard alive inside a closure that owns it.
    pub fn hold(&self) {}
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    /// A connection just opened, with nothing in flight.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { opened: Instant::now(), in_flight: AtomicUsize::new(0), last_ms: AtomicU64::new(u64::MAX) })
    }

    /// Marks a request as started; it is in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> Active {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Active(self.clone())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms.store(ms, Ordering::Release);
    }

    /// Resolves when the connection should be closed: no request started
    /// within `first` of opening, or none in flight for `idle`.
    pub async fn expired(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = match self.last_ms.load(Ordering::Acquire) {
                u64::MAX => self.opened + first,
                ms => self.opened + Duration::from_millis(ms) + idle,
            };
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: look again one idle period later (or on its end).
                tokio::time::sleep(idle.min(first)).await;
                continue;
            }
            let last = self.last_ms.load(Ordering::Acquire);
            let due = match last {
                u64::MAX => self.opened + first,
                ms => self.opened + Duration::from_millis(ms) + idle,
            };
            if Instant::now() >= due {
                return;
            }
        }
    }
}

/// Descriptors kept back from connections for the store, plugins, sandbox
/// memory (memfd) and the like.
pub const FD_RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards and the one before (`None` if unknown).
pub fn raise_nofile_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        // rustix's safe wrappers; `None` is RLIM_INFINITY.
        let soft = |l: Option<u64>| l.unwrap_or(u64::MAX);
        let lim = getrlimit(Resource::Nofile);
        let before = soft(lim.current);
        let mut after = before;
        if before < soft(lim.maximum) && setrlimit(Resource::Nofile, Rlimit { current: lim.maximum, maximum: lim.maximum }).is_ok() {
            after = soft(lim.maximum);
        }
        Some((after, before))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `wanted` connections, at most the descriptor limit less [`FD_RESERVE`]
/// (and at least 1).
pub fn clamp_connections(wanted: usize, nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => {
            let room = usize::try_from(n.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(1);
            wanted.min(room)
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_below_the_descriptor_limit() {
        assert_eq!(clamp_connections(1024, Some(1024)), 1024 - FD_RESERVE as usize);
        assert_eq!(clamp_connections(100, Some(1 << 20)), 100);
        assert_eq!(clamp_connections(100, Some(10)), 1);
        assert_eq!(clamp_connections(100, None), 100);
    }
}
