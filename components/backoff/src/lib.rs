//! The retry schedule shared by the host (upstream MCP reconnects, the
//! embedding provider's worst-case call time) and the remote embedder
//! components (retries of a failed HTTP attempt).
//!
//! It is a plain library with no dependencies, so the host can use it
//! without linking a component crate.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(backoff::delay(0), Duration::from_millis(100));
//! assert_eq!(backoff::delay(1), Duration::from_millis(200));
//! assert_eq!(backoff::delay(30), Duration::from_secs(5));
//! ```

#![forbid(unsafe_code)]

use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(5);

/// The delay before retry number `attempt` (0-based): 100 ms, doubling per
/// attempt, at most 5 s.
pub fn delay(attempt: u32) -> Duration {
    let ms = (FIRST.as_millis() as u64) << attempt.min(16);
    Duration::from_millis(ms.min(MAX.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let got: Vec<u64> = (0..8).map(|n| delay(n).as_millis() as u64).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(delay(u32::MAX), MAX);
    }
}
