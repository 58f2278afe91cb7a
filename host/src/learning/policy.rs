//! An analyzer plugin's policy: what it is granted and the limits it runs
//! under, read from `<name>.policy.toml` beside `<name>.wasm`. A plugin
//! without a policy file gets the defaults, which grant nothing.
//!
//! ```toml
//! version = 1
//! [grants]
//! store = false        # read stored episodes (memory-mcp:memory/store)
//! [limits]
//! fuel = 2_000_000_000 # wasm fuel per batch (about one unit per instruction)
//! memory_mb = 64
//! timeout_ms = 10_000
//! max_patterns = 1_000 # per batch, patterns and heuristics each
//! max_output_bytes = 4_194_304
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The policy format this build reads.
pub const POLICY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerPolicy {
    pub version: u32,
    #[serde(default)]
    pub grants: AnalyzerGrants,
    #[serde(default)]
    pub limits: AnalyzerLimits,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerGrants {
    /// Read access to stored episodes.
    #[serde(default)]
    pub store: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzerLimits {
    pub fuel: u64,
    pub memory_mb: u64,
    pub timeout_ms: u64,
    pub max_patterns: u32,
    pub max_output_bytes: u64,
}

impl Default for AnalyzerLimits {
    fn default() -> Self {
        Self { fuel: 2_000_000_000, memory_mb: 64, timeout_ms: 10_000, max_patterns: 1_000, max_output_bytes: 4 << 20 }
    }
}

impl Default for AnalyzerPolicy {
    fn default() -> Self {
        Self { version: POLICY_VERSION, grants: AnalyzerGrants::default(), limits: AnalyzerLimits::default() }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("{0}: {1}")]
    Invalid(String, String),
}

impl AnalyzerPolicy {
    /// The policy of the built-in analyzer: trusted code, but still metered
    /// so a bug cannot hang the server; batches are large.
    pub fn builtin() -> Self {
        Self {
            version: POLICY_VERSION,
            grants: AnalyzerGrants::default(),
            limits: AnalyzerLimits {
                fuel: 50_000_000_000,
                memory_mb: 512,
                timeout_ms: 60_000,
                max_patterns: 1_000_000,
                max_output_bytes: 256 << 20,
            },
        }
    }

    /// Reads `path`, or the defaults when it does not exist.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(PolicyError::Read(shown, e)),
        };
        let p: Self = toml::from_str(&text).map_err(|e| PolicyError::Parse(shown.clone(), e.to_string()))?;
        p.check().map_err(|m| PolicyError::Invalid(shown, m))?;
        Ok(p)
    }

    fn check(&self) -> Result<(), String> {
        if self.version != POLICY_VERSION {
            return Err(format!("version is {}; this build reads version {POLICY_VERSION}", self.version));
        }
        let l = &self.limits;
        if l.fuel == 0 || l.timeout_ms == 0 || l.max_patterns == 0 {
            return Err("fuel, timeout_ms and max_patterns must be positive".into());
        }
        if !(8..=4096).contains(&l.memory_mb) {
            return Err(format!("memory_mb is {}; it must be between 8 and 4096", l.memory_mb));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_grants_nothing_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.policy.toml");
        assert_eq!(AnalyzerPolicy::load(&p).expect("default"), AnalyzerPolicy::default());
        assert!(!AnalyzerPolicy::default().grants.store);
        std::fs::write(&p, "version = 1\n[grants]\nnetwork = true\n").expect("write");
        let err = AnalyzerPolicy::load(&p).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field"), "{err}");
        std::fs::write(&p, "version = 2\n").expect("write");
        assert!(AnalyzerPolicy::load(&p).is_err());
        std::fs::write(&p, "version = 1\n[grants]\nstore = true\n[limits]\nfuel = 5\n").expect("write");
        let ok = AnalyzerPolicy::load(&p).expect("valid");
        assert!(ok.grants.store);
        assert_eq!((ok.limits.fuel, ok.limits.memory_mb), (5, 64));
    }
}
