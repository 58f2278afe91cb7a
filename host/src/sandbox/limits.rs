//! Sandbox limits: the seed's presets, custom values, and the narrowing a
//! single call may ask for.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most source a call may send.
pub const MAX_CODE_BYTES: usize = 100 * 1024;
/// Default cap on each of stdout and stderr.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Default number of executions that run at once; the rest wait.
pub const DEFAULT_MAX_CONCURRENCY: usize = 20;

/// Executions that may wait for a slot by default. Each waiting call holds
/// at most one frame (8 MiB, and in practice its code and context).
pub const DEFAULT_MAX_QUEUED: usize = 1024;

const MIB: u64 = 1024 * 1024;

/// The seed's sandbox presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// 3 s, 64 MiB.
    Restrictive,
    /// 5 s, 128 MiB.
    #[default]
    Default,
    /// 10 s, 256 MiB.
    Permissive,
}

/// The limits one execution runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time the guest may run before it is stopped.
    pub timeout: Duration,
    /// The most linear memory the guest may grow to, in bytes.
    pub memory_bytes: u64,
    /// Cap on each of stdout, stderr and the returned value's JSON, in bytes.
    pub max_output_bytes: usize,
    /// The longest source a call may send, in bytes.
    pub max_code_bytes: usize,
}

impl Profile {
    /// The preset's limits: its timeout and memory, the default output cap and
    /// the code size limit.
    pub fn limits(self) -> Limits {
        let (secs, mib) = match self {
            Profile::Restrictive => (3, 64),
            Profile::Default => (5, 128),
            Profile::Permissive => (10, 256),
        };
        Limits {
            timeout: Duration::from_secs(secs),
            memory_bytes: mib * MIB,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_code_bytes: MAX_CODE_BYTES,
        }
    }
}

/// A call asked for more than the server allows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// The call asked for a longer timeout than the server allows.
    #[error("timeout_ms {asked} exceeds this server's limit of {max} ms; a call may only lower it")]
    Timeout {
        /// What the call asked for, in ms.
        asked: u64,
        /// The server's limit, in ms.
        max: u64,
    },
    /// The call asked for more memory than the server allows.
    #[error("memory_mb {asked} exceeds this server's limit of {max} MiB; a call may only lower it")]
    Memory {
        /// What the call asked for, in MiB.
        asked: u64,
        /// The server's limit, in MiB.
        max: u64,
    },
    /// The call asked for zero of something that must be at least 1.
    #[error("{field} must be at least 1")]
    Zero {
        /// The parameter that was 0 (`timeout_ms` or `memory_mb`).
        field: &'static str,
    },
}

impl Limits {
    /// The limits for one call: the server's, lowered where the call asks.
    pub fn narrowed(&self, timeout_ms: Option<u64>, memory_mb: Option<u64>) -> Result<Limits, LimitError> {
        let mut out = *self;
        if let Some(ms) = timeout_ms {
            let max = self.timeout.as_millis() as u64;
            if ms == 0 {
                return Err(LimitError::Zero { field: "timeout_ms" });
            }
            if ms > max {
                return Err(LimitError::Timeout { asked: ms, max });
            }
            out.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = memory_mb {
            let max = self.memory_bytes / MIB;
            if mb == 0 {
                return Err(LimitError::Zero { field: "memory_mb" });
            }
            if mb > max {
                return Err(LimitError::Memory { asked: mb, max });
            }
            out.memory_bytes = mb * MIB;
        }
        Ok(out)
    }

    /// The memory limit in whole MiB (rounded down).
    pub fn memory_mb(&self) -> u64 {
        self.memory_bytes / MIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_seed() {
        assert_eq!(Profile::Restrictive.limits().timeout, Duration::from_secs(3));
        assert_eq!(Profile::Restrictive.limits().memory_mb(), 64);
        assert_eq!(Profile::Default.limits().memory_mb(), 128);
        assert_eq!(Profile::Permissive.limits().timeout, Duration::from_secs(10));
        assert_eq!(Profile::Permissive.limits().memory_mb(), 256);
    }

    #[test]
    fn calls_may_lower_but_not_raise() {
        let base = Profile::Default.limits();
        let low = base.narrowed(Some(100), Some(16)).unwrap();
        assert_eq!(low.timeout, Duration::from_millis(100));
        assert_eq!(low.memory_mb(), 16);
        assert_eq!(
            base.narrowed(Some(6000), None),
            Err(LimitError::Timeout { asked: 6000, max: 5000 })
        );
        assert_eq!(
            base.narrowed(None, Some(129)),
            Err(LimitError::Memory { asked: 129, max: 128 })
        );
        assert!(base.narrowed(Some(0), None).is_err());
    }
}
