//! Stopped clocks, for guests whose every run must give the same result
//! (a plugin snapshotted at build time).

use std::time::Duration;

/// A wall clock stopped at the Unix epoch, and a monotonic one stopped at 0.
pub(super) struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}
