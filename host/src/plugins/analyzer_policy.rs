//! An installed analyzer's policy: what it is granted and the limits it runs
//! under, read from `analyzers/<name>.policy.toml` beside `<name>.wasm`
//! (its manifest, `<name>.analyzer.json`, holds the file's checksum).
//! `memory-mcp analyzer install` without `--policy` writes the defaults,
//! which grant nothing.
//!
//! The server sets a ceiling on every limit ([`CEILINGS`]): a policy that
//! asks for more is clamped to the ceiling, with a warning that names the
//! field, never refused and never honoured above it.
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

use serde::{Deserialize, Serialize};

/// The policy format this build reads.
pub const POLICY_VERSION: u32 = 1;

/// An analyzer's `<name>.policy.toml`: the format version, what it is granted, and the limits each call runs under (clamped to [`CEILINGS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerPolicy {
    /// The policy format; must equal [`POLICY_VERSION`].
    pub version: u32,
    /// What the analyzer may use beyond its input; nothing when omitted.
    #[serde(default)]
    pub grants: AnalyzerGrants,
    /// The limits each call runs under; the defaults when omitted.
    #[serde(default)]
    pub limits: AnalyzerLimits,
}

/// What an analyzer is granted; every grant is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerGrants {
    /// Read access to stored episodes.
    #[serde(default)]
    pub store: bool,
}

/// Per-call limits of an analyzer; omitted fields take the defaults (2e9 fuel, 64 MiB, 10 s, 1,000 records, 4 MiB of output).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzerLimits {
    /// Wasm fuel per call (about one unit per instruction).
    pub fuel: u64,
    /// Linear memory per call, all of the component's memories together.
    pub memory_mb: u64,
    /// Wall-clock limit per call.
    pub timeout_ms: u64,
    /// Most patterns, and most heuristics, per batch.
    pub max_patterns: u32,
    /// Most bytes of output per batch; the host copies no more than this
    /// (plus a fixed allowance per record) out of the component.
    pub max_output_bytes: u64,
}

/// The most a third-party analyzer's policy may ask for; larger values are
/// clamped to these.
pub const CEILINGS: AnalyzerLimits = AnalyzerLimits {
    fuel: 20_000_000_000,
    memory_mb: 512,
    timeout_ms: 60_000,
    max_patterns: 10_000,
    max_output_bytes: 64 << 20,
};

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

/// Why a policy file was refused; each variant carries the file's name and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not valid TOML of the policy's shape (unknown keys are refused).
    #[error("{0}: {1}")]
    Parse(String, String),
    /// The file parses but is invalid: another format version, a zero limit, or less than 8 MiB of memory.
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

    /// Parses a policy file's text (`shown` names it in errors) and clamps
    /// it to [`CEILINGS`]. Returns the policy and one note per clamped field.
    pub fn parse(text: &str, shown: &str) -> Result<(Self, Vec<String>), PolicyError> {
        let mut p: Self = toml::from_str(text).map_err(|e| PolicyError::Parse(shown.into(), e.to_string()))?;
        p.check().map_err(|m| PolicyError::Invalid(shown.into(), m))?;
        let clamped = p.limits.clamp_to(&CEILINGS);
        Ok((p, clamped))
    }

    /// The policy as TOML, as `analyzer install` writes it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|_| format!("version = {POLICY_VERSION}\n"))
    }

    fn check(&self) -> Result<(), String> {
        if self.version != POLICY_VERSION {
            return Err(format!("version is {}; this build reads version {POLICY_VERSION}", self.version));
        }
        let l = &self.limits;
        if l.fuel == 0 || l.timeout_ms == 0 || l.max_patterns == 0 {
            return Err("fuel, timeout_ms and max_patterns must be positive".into());
        }
        if l.memory_mb < 8 {
            return Err(format!("memory_mb is {}; it must be at least 8", l.memory_mb));
        }
        if l.max_output_bytes == 0 {
            return Err("max_output_bytes must be positive".into());
        }
        Ok(())
    }
}

impl AnalyzerLimits {
    /// Lowers every limit above `ceiling` to it; says which.
    pub fn clamp_to(&mut self, ceiling: &AnalyzerLimits) -> Vec<String> {
        let mut notes = Vec::new();
        let mut clamp = |field: &str, value: &mut u64, max: u64| {
            if *value > max {
                notes.push(format!("{field} = {value} is above the server's ceiling; clamped to {max}"));
                *value = max;
            }
        };
        clamp("fuel", &mut self.fuel, ceiling.fuel);
        clamp("memory_mb", &mut self.memory_mb, ceiling.memory_mb);
        clamp("timeout_ms", &mut self.timeout_ms, ceiling.timeout_ms);
        clamp("max_output_bytes", &mut self.max_output_bytes, ceiling.max_output_bytes);
        let mut patterns = u64::from(self.max_patterns);
        clamp("max_patterns", &mut patterns, u64::from(ceiling.max_patterns));
        self.max_patterns = u32::try_from(patterns).unwrap_or(ceiling.max_patterns);
        notes
    }

    /// The most bytes the host copies out of one call's result (wasmtime's
    /// "hostcall fuel"): the output budget, plus room for the records' own
    /// fixed-size parts. It is checked as each string and list is lifted,
    /// before it is copied, so a result whose strings all alias one buffer
    /// costs the host no more than this.
    pub fn copy_budget(&self) -> usize {
        const PER_RECORD: u64 = 1024;
        let records = u64::from(self.max_patterns).saturating_mul(2).saturating_add(16);
        usize::try_from(self.max_output_bytes.saturating_add(records.saturating_mul(PER_RECORD))).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_grant_nothing_and_unknown_fields_are_refused() {
        assert_eq!(AnalyzerPolicy::parse("version = 1\n", "x").expect("default").0, AnalyzerPolicy::default());
        assert!(!AnalyzerPolicy::default().grants.store);
        let err = AnalyzerPolicy::parse("version = 1\n[grants]\nnetwork = true\n", "x").expect_err("unknown field");
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(AnalyzerPolicy::parse("version = 2\n", "x").is_err());
        let (ok, notes) = AnalyzerPolicy::parse("version = 1\n[grants]\nstore = true\n[limits]\nfuel = 5\n", "x").expect("valid");
        assert!(ok.grants.store && notes.is_empty());
        assert_eq!((ok.limits.fuel, ok.limits.memory_mb), (5, 64));
        let (round, _) = AnalyzerPolicy::parse(&ok.to_toml(), "x").expect("round trip");
        assert_eq!(round, ok);
    }

    #[test]
    fn every_limit_is_clamped_to_its_ceiling() {
        let text = "version = 1\n[limits]\nfuel = 18446744073709551615\nmemory_mb = 1000000\ntimeout_ms = 999999999\nmax_patterns = 4000000000\nmax_output_bytes = 18446744073709551615\n";
        let (p, notes) = AnalyzerPolicy::parse(text, "x").expect("clamped, not refused");
        assert_eq!(p.limits, CEILINGS);
        assert_eq!(notes.len(), 5, "{notes:?}");
        assert!(CEILINGS.copy_budget() < 128 << 20);
    }
}
