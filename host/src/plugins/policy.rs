//! A plugin's policy, `NAME.policy.toml` beside `NAME.wasm`: the tools it
//! may call and the limits it runs under. It is data with a version and
//! `deny_unknown_fields`; a field this build does not know refuses the
//! plugin rather than being ignored.
//!
//! ```toml
//! version = 1
//!
//! [tools]                      # as [sandbox.tools]; nothing by default
//! allow = ["memory.query_memory"]
//! max_calls_per_execution = 10
//!
//! [limits]                     # each at most the server's; default: the server's
//! timeout_ms = 2000
//! memory_mb = 64
//! max_output_bytes = 65536
//! ```
//!
//! A plugin always runs within the server's own `[sandbox.tools]` policy:
//! a call must be allowed by both, and each number is the smaller one.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PluginError;
use crate::sandbox::{CompiledPolicy, Limits, ToolPolicy};

/// The policy format this build reads.
pub const PLUGIN_POLICY_VERSION: u32 = 1;

/// A plugin's `NAME.policy.toml`: which tools it may call and the limits
/// it runs under, both within the server's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPolicy {
    /// Format version; must be 1.
    pub version: u32,
    /// Tool calls the plugin may make (deny-by-default).
    #[serde(default)]
    pub tools: ToolPolicy,
    /// Lower limits for the plugin's executions (and its build).
    #[serde(default)]
    pub limits: PluginLimits,
}

/// Limits lower than the server's; unset means the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// Wall-clock limit per call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory limit, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Cap on each of stdout, stderr and the result, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<usize>,
}

impl Default for PluginPolicy {
    /// No tools, the server's limits.
    fn default() -> Self {
        Self { version: PLUGIN_POLICY_VERSION, tools: ToolPolicy::default(), limits: PluginLimits::default() }
    }
}

impl PluginPolicy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let policy: PluginPolicy = toml::from_str(text).map_err(|e| PluginError::Policy(e.message().to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// The version, the allow patterns and the limits are valid.
    pub fn check(&self) -> Result<(), PluginError> {
        if self.version != PLUGIN_POLICY_VERSION {
            return Err(PluginError::Policy(format!(
                "version {} is not supported (this build reads version {PLUGIN_POLICY_VERSION})",
                self.version
            )));
        }
        CompiledPolicy::new(self.tools.clone()).map_err(|e| PluginError::Policy(e.to_string()))?;
        let zero = [
            ("timeout_ms", self.limits.timeout_ms == Some(0)),
            ("memory_mb", self.limits.memory_mb == Some(0)),
            ("max_output_bytes", self.limits.max_output_bytes == Some(0)),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(PluginError::Policy(format!("limits.{field} must be at least 1")));
        }
        Ok(())
    }

    /// The file's text: the same policy always gives the same bytes.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Whether the plugin may call any tool (it is then built on the
    /// `tool-plugin` world; otherwise on `pure-plugin`, with no tools import).
    pub fn grants_tools(&self) -> bool {
        !self.tools.allow.is_empty()
    }

    /// The tool policy a call of plugin `name` runs under: this one, within
    /// the server's.
    pub fn compile(&self, name: &str, server: Arc<CompiledPolicy>) -> Result<CompiledPolicy, PluginError> {
        let own = CompiledPolicy::new(self.tools.clone()).map_err(|e| PluginError::Policy(e.to_string()))?;
        Ok(own.labelled(format!("plugin `{name}`'s policy")).within(server))
    }

    /// The limits a call runs under: the server's, lowered where this
    /// policy asks.
    pub fn limits(&self, server: &Limits) -> Limits {
        let mut l = *server;
        if let Some(ms) = self.limits.timeout_ms {
            l.timeout = l.timeout.min(Duration::from_millis(ms));
        }
        if let Some(mb) = self.limits.memory_mb {
            l.memory_bytes = l.memory_bytes.min(mb.saturating_mul(1024 * 1024));
        }
        if let Some(b) = self.limits.max_output_bytes {
            l.max_output_bytes = l.max_output_bytes.min(b);
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Profile;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let p = PluginPolicy::parse("version = 1\n[tools]\nallow = [\"memory.query_memory\"]\n[limits]\ntimeout_ms = 100\n").unwrap();
        assert!(p.grants_tools());
        assert_eq!(PluginPolicy::parse(&p.to_toml()).unwrap(), p);
        let e = PluginPolicy::parse("version = 1\nallow_everything = true\n").unwrap_err();
        assert!(e.to_string().contains("allow_everything"), "{e}");
        assert!(PluginPolicy::parse("[tools]\n").is_err(), "version is required");
        assert!(PluginPolicy::parse("version = 2\n").is_err());
        assert!(PluginPolicy::parse("version = 1\n[limits]\nmemory_mb = 0\n").is_err());
    }

    #[test]
    fn limits_only_narrow() {
        let server = Profile::Default.limits();
        let p = PluginPolicy { limits: PluginLimits { timeout_ms: Some(60_000), memory_mb: Some(16), max_output_bytes: None }, ..Default::default() };
        let l = p.limits(&server);
        assert_eq!(l.timeout, server.timeout);
        assert_eq!(l.memory_bytes, 16 << 20);
    }
}
