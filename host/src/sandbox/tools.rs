//! The `memory-mcp:tool-call/tools` host interface, in wasmtime's
//! host-interface shape: an owned [`ToolsCtx`] in the store data, a borrowed
//! [`ToolsView`], [`add_to_linker`], and the generated `Host` trait
//! implemented on the view.
//!
//! Every call passes the deny-by-default policy first. A refused call is
//! recorded as the execution's security violation and never reaches a
//! server.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::{HasData, Linker};

use super::policy::CompiledPolicy;
use crate::world::tools::{Host, ToolError, add_to_linker as add_generated};

/// Why a routed call did not produce a result.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The server or tool is unknown, down or timed out.
    #[error("{0}")]
    Unavailable(String),
    /// The tool ran and reported an error (its text).
    #[error("tool reported an error: {0}")]
    Failed(String),
}

pub type DispatchFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, DispatchError>> + Send + 'a>>;

/// Routes an allowed call to a real MCP server, and keeps the audit.
pub trait ToolDispatcher: Send + Sync + 'static {
    fn call<'a>(&'a self, server: &'a str, tool: &'a str, args: Value) -> DispatchFuture<'a>;

    /// Persists one call's record, refused calls included.
    fn audit(&self, _record: &ToolCallRecord) {}
}

/// A router with no servers configured: every call is unavailable.
#[derive(Debug, Default)]
pub struct NoServers;

impl ToolDispatcher for NoServers {
    fn call<'a>(&'a self, server: &'a str, _tool: &'a str, _args: Value) -> DispatchFuture<'a> {
        Box::pin(async move {
            Err(DispatchError::Unavailable(format!(
                "no MCP server named `{server}` is configured"
            )))
        })
    }
}

/// Per-tool sliding one-minute windows, shared by all executions.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Records a call if `key` is under `per_minute`; false if over.
    pub fn try_acquire(&self, key: &str, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(key.to_string()).or_default();
        while w.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            w.pop_front();
        }
        if w.len() >= per_minute as usize {
            return false;
        }
        w.push_back(now);
        true
    }
}

/// One tool call, as audited.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ToolCallRecord {
    /// When the call was made.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The execution that made it (`execution_id` in its result).
    pub execution_id: uuid::Uuid,
    pub server: String,
    pub tool: String,
    /// Size of the arguments as JSON text.
    pub args_bytes: usize,
    /// blake3 of the arguments' JSON text (the arguments are not kept).
    pub args_blake3: String,
    /// ok, tool_error, unavailable, invalid_arguments or denied.
    pub outcome: String,
    /// From the call to its answer (or refusal), in microseconds.
    pub latency_us: u64,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The owned state of the `tools` interface for one execution.
pub struct ToolsCtx {
    pub execution_id: uuid::Uuid,
    pub policy: Arc<CompiledPolicy>,
    pub dispatcher: Arc<dyn ToolDispatcher>,
    pub rate: Arc<RateLimiter>,
    pub calls: u32,
    /// The first refusal, which makes the execution a security violation.
    pub violation: Option<String>,
    /// Calls made so far, by outcome (the full records are in the audit).
    pub records: Vec<ToolCallRecord>,
}

impl ToolsCtx {
    pub fn new(
        execution_id: uuid::Uuid,
        policy: Arc<CompiledPolicy>,
        dispatcher: Arc<dyn ToolDispatcher>,
        rate: Arc<RateLimiter>,
    ) -> Self {
        Self {
            execution_id,
            policy,
            dispatcher,
            rate,
            calls: 0,
            violation: None,
            records: Vec::new(),
        }
    }
}

/// Borrowed access to a [`ToolsCtx`].
pub struct ToolsView<'a> {
    pub ctx: &'a mut ToolsCtx,
}

struct HasTools;

impl HasData for HasTools {
    type Data<'a> = ToolsView<'a>;
}

/// Links the `tools` interface, reading its state through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ToolsView<'_>,
) -> wasmtime::Result<()> {
    add_generated::<T, HasTools>(linker, get)
}

impl ToolsView<'_> {
    fn deny(&mut self, reason: String) -> ToolError {
        if self.ctx.violation.is_none() {
            self.ctx.violation = Some(reason.clone());
        }
        ToolError::Denied(reason)
    }

    fn record(&mut self, call: (&str, &str, &str), outcome: &str, error: Option<&str>, started: Instant) {
        let (server, tool, args) = call;
        let record = ToolCallRecord {
            at: chrono::Utc::now(),
            execution_id: self.ctx.execution_id,
            server: server.to_string(),
            tool: tool.to_string(),
            args_bytes: args.len(),
            args_blake3: blake3::hash(args.as_bytes()).to_hex().to_string(),
            outcome: outcome.to_string(),
            latency_us: started.elapsed().as_micros() as u64,
            error: error.map(|e| e.chars().take(500).collect()),
        };
        self.ctx.dispatcher.audit(&record);
        self.ctx.records.push(record);
    }

    /// The policy checks, in order; `Err` is the refusal reason.
    fn admit(&mut self, server: &str, tool: &str, args: &str) -> Result<(), String> {
        let policy = &self.ctx.policy.policy;
        if let Some(reason) = self.ctx.policy.refusal(server, tool) {
            return Err(reason);
        }
        if self.ctx.calls >= policy.max_calls_per_execution {
            return Err(format!(
                "tool `{server}.{tool}` refused: this execution reached its cap of {} tool calls",
                policy.max_calls_per_execution
            ));
        }
        if args.len() > policy.max_payload_bytes {
            return Err(format!(
                "tool `{server}.{tool}` refused: arguments are {} bytes, over the {}-byte payload limit",
                args.len(),
                policy.max_payload_bytes
            ));
        }
        let key = format!("{server}.{tool}");
        if !self.ctx.rate.try_acquire(&key, policy.rate_limit_per_minute) {
            return Err(format!(
                "tool `{key}` refused: over its rate limit of {} calls per minute",
                policy.rate_limit_per_minute
            ));
        }
        Ok(())
    }
}

impl Host for ToolsView<'_> {
    async fn call_tool(&mut self, server: String, name: String, arguments_json: String) -> Result<String, ToolError> {
        let started = Instant::now();
        let call = (server.as_str(), name.as_str(), arguments_json.as_str());
        if let Err(reason) = self.admit(&server, &name, &arguments_json) {
            self.record(call, "denied", Some(&reason), started);
            return Err(self.deny(reason));
        }
        self.ctx.calls += 1;
        let args: Value = match serde_json::from_str(&arguments_json) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let reason = "arguments must be a JSON object";
                self.record(call, "invalid_arguments", Some(reason), started);
                return Err(ToolError::InvalidArguments(reason.into()));
            }
        };
        let dispatcher = Arc::clone(&self.ctx.dispatcher);
        let result = dispatcher.call(&server, &name, args).await;
        match result {
            Ok(value) => {
                let json = value.to_string();
                let max = self.ctx.policy.policy.max_payload_bytes;
                if json.len() > max {
                    let reason =
                        format!("tool `{server}.{name}` result is {} bytes, over the {max}-byte payload limit", json.len());
                    self.record(call, "denied", Some(&reason), started);
                    return Err(self.deny(reason));
                }
                self.record(call, "ok", None, started);
                Ok(json)
            }
            Err(DispatchError::Failed(m)) => {
                self.record(call, "tool_error", Some(&m), started);
                Err(ToolError::Failed(m))
            }
            Err(DispatchError::Unavailable(m)) => {
                self.record(call, "unavailable", Some(&m), started);
                Err(ToolError::Unavailable(m))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::policy::ToolPolicy;

    fn view_with(policy: ToolPolicy) -> ToolsCtx {
        ToolsCtx::new(
            uuid::Uuid::now_v7(),
            Arc::new(CompiledPolicy::new(policy).unwrap()),
            Arc::new(NoServers),
            Arc::new(RateLimiter::default()),
        )
    }

    #[tokio::test]
    async fn denied_calls_are_violations_and_never_dispatched() {
        let mut ctx = view_with(ToolPolicy::default());
        let mut v = ToolsView { ctx: &mut ctx };
        let r = v.call_tool("memory".into(), "query_memory".into(), "{}".into()).await;
        assert!(matches!(r, Err(ToolError::Denied(_))));
        assert!(ctx.violation.as_deref().unwrap().contains("memory.query_memory"));
        assert_eq!(ctx.calls, 0);
        assert_eq!(ctx.records[0].outcome, "denied");
    }

    #[tokio::test]
    async fn allowed_calls_reach_the_dispatcher() {
        let mut ctx = view_with(ToolPolicy {
            allow: vec!["x.*".into()],
            ..Default::default()
        });
        let mut v = ToolsView { ctx: &mut ctx };
        let r = v.call_tool("x".into(), "y".into(), "{}".into()).await;
        assert!(matches!(r, Err(ToolError::Unavailable(m)) if m.contains("`x`")));
        assert!(ctx.violation.is_none());
        assert_eq!(ctx.calls, 1);
    }

    #[tokio::test]
    async fn the_per_execution_cap_and_payload_limit_hold() {
        let mut ctx = view_with(ToolPolicy {
            allow: vec!["x.*".into()],
            max_calls_per_execution: 1,
            max_payload_bytes: 8,
            ..Default::default()
        });
        let mut v = ToolsView { ctx: &mut ctx };
        let big = v.call_tool("x".into(), "y".into(), r#"{"a":"0123456789"}"#.into()).await;
        assert!(matches!(big, Err(ToolError::Denied(m)) if m.contains("payload")));
        let _ = v.call_tool("x".into(), "y".into(), "{}".into()).await;
        let over = v.call_tool("x".into(), "y".into(), "{}".into()).await;
        assert!(matches!(over, Err(ToolError::Denied(m)) if m.contains("cap")));
    }

    #[test]
    fn rate_limits_are_per_tool() {
        let r = RateLimiter::default();
        assert!(r.try_acquire("a.b", 2));
        assert!(r.try_acquire("a.b", 2));
        assert!(!r.try_acquire("a.b", 2));
        assert!(r.try_acquire("a.c", 2));
    }
}
