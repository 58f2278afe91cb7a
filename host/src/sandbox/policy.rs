//! What sandboxed code may call, as data: a versioned serde policy with
//! `deny_unknown_fields`, turned into a matcher in one place. Nothing is
//! allowed unless listed.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The policy format this build reads.
pub const POLICY_VERSION: u32 = 1;

/// Tool-call policy, as written in `[sandbox.tools]` of the config file or
/// beside a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// Format version; must be 1.
    #[serde(default = "default_version")]
    pub version: u32,
    /// `server.tool` glob patterns, e.g. `memory.*` or `everything.echo`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Tool calls one execution may make.
    #[serde(default = "default_max_calls")]
    pub max_calls_per_execution: u32,
    /// Calls per minute to any one tool, across executions.
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    /// Largest arguments or result, in bytes, each way.
    #[serde(default = "default_payload")]
    pub max_payload_bytes: usize,
    /// Refused calls one execution may make before it is stopped (a
    /// refusal also counts against `max_calls_per_execution`).
    #[serde(default = "default_refusals")]
    pub max_refusals_per_execution: u32,
}

fn default_version() -> u32 {
    POLICY_VERSION
}
fn default_max_calls() -> u32 {
    50
}
fn default_rate() -> u32 {
    100
}
fn default_payload() -> usize {
    1024 * 1024
}
fn default_refusals() -> u32 {
    10
}

impl Default for ToolPolicy {
    /// Deny everything.
    fn default() -> Self {
        Self {
            version: POLICY_VERSION,
            allow: Vec::new(),
            max_calls_per_execution: default_max_calls(),
            rate_limit_per_minute: default_rate(),
            max_payload_bytes: default_payload(),
            max_refusals_per_execution: default_refusals(),
        }
    }
}

/// Why a tool-call policy was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy's `version` is not the one this build reads.
    #[error("policy version {0} is not supported (this build reads version {POLICY_VERSION})")]
    Version(u32),
    /// An `allow` entry is not a valid `server.tool` glob.
    #[error("allow pattern {pattern:?} is invalid: {reason}")]
    Pattern {
        /// The entry as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A checked policy, ready to answer "may this tool be called?".
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The effective numbers (the smaller of this policy's and any outer
    /// policy's, see [`CompiledPolicy::within`]).
    pub policy: ToolPolicy,
    allow: GlobSet,
    /// Names this policy in refusals.
    label: String,
    /// A policy that must also allow every call (the server's, around a
    /// plugin's).
    outer: Option<std::sync::Arc<CompiledPolicy>>,
}

/// How refusals name the server's own policy.
pub const SANDBOX_POLICY: &str = "the sandbox policy";

impl CompiledPolicy {
    /// Checks `policy` (its version and every allow pattern) and compiles its
    /// globs; it stands alone, with no outer policy.
    pub fn new(policy: ToolPolicy) -> Result<Self, PolicyError> {
        if policy.version != POLICY_VERSION {
            return Err(PolicyError::Version(policy.version));
        }
        let mut b = GlobSetBuilder::new();
        for p in &policy.allow {
            if !p.contains('.') {
                return Err(PolicyError::Pattern {
                    pattern: p.clone(),
                    reason: "expected `server.tool`, e.g. `memory.*`".into(),
                });
            }
            let glob = Glob::new(p).map_err(|e| PolicyError::Pattern {
                pattern: p.clone(),
                reason: e.to_string(),
            })?;
            b.add(glob);
        }
        let allow = b.build().map_err(|e| PolicyError::Pattern {
            pattern: policy.allow.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Self { policy, allow, label: SANDBOX_POLICY.into(), outer: None })
    }

    /// Deny-by-default.
    pub fn deny_all() -> Self {
        Self { policy: ToolPolicy::default(), allow: GlobSet::empty(), label: SANDBOX_POLICY.into(), outer: None }
    }

    /// Names this policy in refusals, e.g. "plugin `x`'s policy".
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// This policy, bounded by `outer`: a call must be allowed by both, and
    /// each limit is the smaller of the two. A plugin runs within the
    /// server's policy, so it can never do more than code the server runs.
    pub fn within(mut self, outer: std::sync::Arc<CompiledPolicy>) -> Self {
        let (p, o) = (&mut self.policy, &outer.policy);
        p.max_calls_per_execution = p.max_calls_per_execution.min(o.max_calls_per_execution);
        p.rate_limit_per_minute = p.rate_limit_per_minute.min(o.rate_limit_per_minute);
        p.max_payload_bytes = p.max_payload_bytes.min(o.max_payload_bytes);
        p.max_refusals_per_execution = p.max_refusals_per_execution.min(o.max_refusals_per_execution);
        self.outer = Some(outer);
        self
    }

    /// Why `server.tool` may not be called, or `None` if it may.
    pub fn refusal(&self, server: &str, tool: &str) -> Option<String> {
        if !self.allow.is_match(format!("{server}.{tool}")) {
            return Some(format!("tool `{server}.{tool}` is not allowed by {}", self.label));
        }
        self.outer.as_ref().and_then(|o| o.refusal(server, tool))
    }

    /// Whether `server.tool` may be called (by this policy and any outer one).
    pub fn allows(&self, server: &str, tool: &str) -> bool {
        self.refusal(server, tool).is_none()
    }

    /// Whether any tool at all may be called.
    pub fn allows_any(&self) -> bool {
        !self.policy.allow.is_empty() && self.outer.as_ref().is_none_or(|o| o.allows_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = CompiledPolicy::new(ToolPolicy::default()).unwrap();
        assert!(!p.allows("memory", "query_memory"));
        assert!(!CompiledPolicy::deny_all().allows("a", "b"));
    }

    #[test]
    fn globs_match_server_and_tool() {
        let p = CompiledPolicy::new(ToolPolicy {
            allow: vec!["memory.*".into(), "everything.echo".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(p.allows("memory", "query_memory"));
        assert!(p.allows("everything", "echo"));
        assert!(!p.allows("everything", "add"));
        assert!(!p.allows("memoryx", "query"));
    }

    #[test]
    fn an_inner_policy_is_bounded_by_the_outer_one() {
        let outer = CompiledPolicy::new(ToolPolicy { allow: vec!["memory.*".into()], max_calls_per_execution: 5, ..Default::default() })
            .unwrap();
        let inner = CompiledPolicy::new(ToolPolicy { allow: vec!["memory.query_memory".into(), "fs.*".into()], ..Default::default() })
            .unwrap()
            .labelled("plugin `p`'s policy")
            .within(std::sync::Arc::new(outer));
        assert!(inner.allows("memory", "query_memory"));
        assert!(inner.refusal("memory", "store_episode").unwrap().contains("plugin `p`'s policy"));
        assert!(inner.refusal("fs", "read").unwrap().contains("the sandbox policy"));
        assert_eq!(inner.policy.max_calls_per_execution, 5);
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let bad: Result<ToolPolicy, _> = toml::from_str("allow = []\nallow_all = true\n");
        assert!(bad.is_err());
        let v2: ToolPolicy = toml::from_str("version = 2\n").unwrap();
        assert!(CompiledPolicy::new(v2).is_err());
    }
}
