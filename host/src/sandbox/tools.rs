//! The `memory-mcp:tool-call/tools` host interface, in wasmtime's
//! host-interface shape: an owned [`ToolsCtx`] in the store data, a borrowed
//! [`ToolsView`], [`add_to_linker`], and the generated `Host` trait
//! implemented on the view.
//!
//! Every call is charged to the execution that makes it, refused or not:
//! 1. the names are checked ([`super::tool_names`]); a bad one is a
//!    `TypeError` in the guest;
//! 2. the per-execution cap counts every call, refusals included;
//! 3. the policy, the payload limit, then whether the tool exists (no
//!    per-tool state is kept for a name that does not), then the rate
//!    limit shared by code mode and every plugin.
//!
//! A refused call is recorded as the execution's security violation and
//! never reaches a server; past `max_refusals_per_execution` refusals the
//! execution is stopped (a trap). The audit keeps the first
//! [`MAX_AUDITED_PER_EXECUTION`] calls of an execution and a count of the
//! rest, and the tools that answered are kept apart, bounded by the cap.
//! Where admitted calls go, and the audit record's shape, are in
//! [`super::dispatch`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::{HasData, Linker};

use super::dispatch::{DispatchError, ToolCallRecord, ToolDispatcher, outcome};
use super::policy::CompiledPolicy;
use super::tool_names::{self, MAX_SERVER_NAME, MAX_TOOL_NAME};
use crate::principal::Principal;
use crate::world::tools::{Host, ToolError, add_to_linker as add_generated};

/// Audit records written for one execution; further calls are counted in
/// one summary record instead.
pub const MAX_AUDITED_PER_EXECUTION: u32 = 64;

/// Sliding one-minute windows per tool, shared by code mode and every
/// plugin for the life of the server (a plugin reload does not reset
/// them). Each tool has one window for all principals, holding its limit,
/// and one per principal, holding that principal's fair share of it
/// ([`crate::principal::fair_share`]: the whole limit with one principal).
/// Only tools that exist get windows.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Which window refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    /// The tool's limit, which all principals share.
    Tool,
    /// The calling principal's share of it.
    Share(usize),
}

impl RateLimiter {
    /// Records a call of `tool` by `principal` if both the tool's window
    /// (`per_minute`) and the principal's (its fair share) have room.
    pub fn try_acquire(&self, principal: &str, tool: &str, per_minute: u32) -> Result<(), OverLimit> {
        self.acquire_within(principal, tool, per_minute as usize, crate::principal::fair_share(per_minute as usize))
    }

    fn acquire_within(&self, principal: &str, tool: &str, limit: usize, share: usize) -> Result<(), OverLimit> {
        let now = Instant::now();
        let mut windows = crate::sync::lock(&self.windows);
        // Principal and tool names hold no NUL, so the keys are unambiguous
        // and a principal's key never equals a tool's.
        let own = format!("{principal}\0{tool}");
        if Self::current(&mut windows, tool, now) >= limit {
            return Err(OverLimit::Tool);
        }
        if Self::current(&mut windows, &own, now) >= share {
            return Err(OverLimit::Share(share));
        }
        for key in [tool, own.as_str()] {
            windows.entry(key.to_string()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Calls in `key`'s window in the last minute.
    fn current(windows: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) -> usize {
        let Some(w) = windows.get_mut(key) else { return 0 };
        while w.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            w.pop_front();
        }
        w.len()
    }

    /// Tools with a window.
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.windows).len()
    }

    /// Whether no tool has a window (nothing was called in the last minute).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an execution's tool calls came to, once it has ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallSummary {
    /// `server.tool` names that were admitted and returned a result (not
    /// an error), at most the per-execution cap.
    pub answered: BTreeSet<String>,
    /// Calls made, refused ones included.
    pub calls: u32,
    /// Calls the policy or the rate limiter refused.
    pub refusals: u32,
}

/// The owned state of the `tools` interface for one execution.
pub struct ToolsCtx {
    /// The execution whose calls these are (named in every audit record).
    pub execution_id: uuid::Uuid,
    /// What the execution may call.
    pub policy: Arc<CompiledPolicy>,
    /// Where allowed calls go, and where they are audited.
    pub dispatcher: Arc<dyn ToolDispatcher>,
    /// The server's per-tool call windows, which the policy's rate limit
    /// counts calls in.
    pub rate: Arc<RateLimiter>,
    /// Whose execution this is ([`Principal::current`] when it was made):
    /// its calls are audited under, and rate-limited within, its share.
    pub principal: Principal,
    /// The first refusal, which makes the execution a security violation.
    pub violation: Option<String>,
    /// The calls so far; [`ToolsCtx::finish`] hands it over.
    pub summary: CallSummary,
    audited: u32,
    omitted: u64,
}

impl ToolsCtx {
    /// A fresh context for execution `execution_id`, under the current
    /// principal, with no calls made yet.
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
            principal: Principal::current(),
            violation: None,
            summary: CallSummary::default(),
            audited: 0,
            omitted: 0,
        }
    }

    /// Ends the execution's share of the audit: the count of calls past
    /// the bound, if any, becomes one record. Returns the summary.
    pub fn finish(&mut self) -> CallSummary {
        if self.omitted > 0 {
            let record = ToolCallRecord {
                at: chrono::Utc::now(),
                execution_id: self.execution_id,
                server: String::new(),
                tool: String::new(),
                args_bytes: 0,
                args_blake3: String::new(),
                outcome: outcome::OMITTED.into(),
                latency_us: 0,
                error: Some(format!(
                    "{} further calls of this execution were not recorded (the audit keeps the first {MAX_AUDITED_PER_EXECUTION})",
                    self.omitted
                )),
                omitted: Some(self.omitted),
                principal: Some(self.principal.name().to_string()),
            };
            self.dispatcher.audit(&record);
            self.omitted = 0;
        }
        std::mem::take(&mut self.summary)
    }
}

/// Borrowed access to a [`ToolsCtx`].
pub struct ToolsView<'a> {
    /// The execution's tool-call state, borrowed from its store.
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

/// The execution made more refused calls than its policy tolerates; it is
/// stopped with this trap, and reported as a security violation.
#[derive(Debug, thiserror::Error)]
#[error("stopped after {0} refused tool calls")]
pub struct RefusalBudgetExceeded(pub u32);

/// A refusal and the outcome it is audited as.
struct Refusal {
    outcome: &'static str,
    reason: String,
    error: ToolError,
}

impl Refusal {
    fn denied(reason: String) -> Self {
        Self { outcome: outcome::DENIED, error: ToolError::Denied(reason.clone()), reason }
    }
}

impl ToolsView<'_> {
    fn record(&mut self, call: (&str, &str, &str), outcome: &str, error: Option<&str>, started: Instant) {
        if self.ctx.audited >= MAX_AUDITED_PER_EXECUTION {
            self.ctx.omitted += 1;
            return;
        }
        self.ctx.audited += 1;
        let (server, tool, args) = call;
        let record = ToolCallRecord {
            at: chrono::Utc::now(),
            execution_id: self.ctx.execution_id,
            server: tool_names::shorten(server, MAX_SERVER_NAME),
            tool: tool_names::shorten(tool, MAX_TOOL_NAME),
            args_bytes: args.len(),
            args_blake3: blake3::hash(args.as_bytes()).to_hex().to_string(),
            outcome: outcome.to_string(),
            latency_us: started.elapsed().as_micros() as u64,
            error: error.map(|e| tool_names::shorten(e, 500)),
            omitted: None,
            principal: Some(self.ctx.principal.name().to_string()),
        };
        self.ctx.dispatcher.audit(&record);
    }

    /// The checks before dispatch, in order; `Err` is the refusal.
    async fn admit(&mut self, server: &str, tool: &str, args: &str) -> Result<Value, Refusal> {
        if let Err(e) = tool_names::check(server, tool) {
            let reason = e.to_string();
            return Err(Refusal { outcome: outcome::INVALID_ARGUMENTS, error: ToolError::InvalidArguments(reason.clone()), reason });
        }
        let policy = &self.ctx.policy.policy;
        if self.ctx.summary.calls > policy.max_calls_per_execution {
            return Err(Refusal::denied(format!(
                "tool `{server}.{tool}` refused: this execution reached its cap of {} tool calls",
                policy.max_calls_per_execution
            )));
        }
        if let Some(reason) = self.ctx.policy.refusal(server, tool) {
            return Err(Refusal::denied(reason));
        }
        if args.len() > policy.max_payload_bytes {
            return Err(Refusal::denied(format!(
                "tool `{server}.{tool}` refused: arguments are {} bytes, over the {}-byte payload limit",
                args.len(),
                policy.max_payload_bytes
            )));
        }
        let args = match serde_json::from_str(args) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let reason = "arguments must be a JSON object".to_string();
                return Err(Refusal { outcome: outcome::INVALID_ARGUMENTS, error: ToolError::InvalidArguments(reason.clone()), reason });
            }
        };
        let per_minute = policy.rate_limit_per_minute;
        if let Err(DispatchError::Unavailable(m) | DispatchError::Failed(m)) =
            self.ctx.dispatcher.resolve(server, tool).await
        {
            return Err(Refusal { outcome: outcome::UNAVAILABLE, error: ToolError::Unavailable(m.clone()), reason: m });
        }
        match self.ctx.rate.try_acquire(self.ctx.principal.name(), &format!("{server}.{tool}"), per_minute) {
            Ok(()) => {}
            Err(OverLimit::Tool) => {
                return Err(Refusal::denied(format!(
                    "tool `{server}.{tool}` refused: over its rate limit of {per_minute} calls per minute, which all callers share"
                )));
            }
            Err(OverLimit::Share(share)) => {
                return Err(Refusal::denied(format!(
                    "tool `{server}.{tool}` refused: over principal `{}`'s share of its rate limit ({share} of {per_minute} calls per minute)",
                    self.ctx.principal
                )));
            }
        }
        Ok(args)
    }

    /// Charges a refusal; the execution becomes a security violation when
    /// the policy refused it, and is stopped past its refusal budget.
    fn refuse(&mut self, refusal: Refusal) -> wasmtime::Result<Result<String, ToolError>> {
        if refusal.outcome == outcome::UNAVAILABLE {
            return Ok(Err(refusal.error));
        }
        self.ctx.summary.refusals += 1;
        if refusal.outcome == outcome::DENIED && self.ctx.violation.is_none() {
            self.ctx.violation = Some(refusal.reason);
        }
        let budget = self.ctx.policy.policy.max_refusals_per_execution;
        if self.ctx.summary.refusals > budget {
            if self.ctx.violation.is_none() {
                self.ctx.violation = Some(format!("the code made more than {budget} refused tool calls"));
            }
            return Err(RefusalBudgetExceeded(self.ctx.summary.refusals).into());
        }
        Ok(Err(refusal.error))
    }
}

impl Host for ToolsView<'_> {
    async fn call_tool(
        &mut self,
        server: String,
        name: String,
        arguments_json: String,
    ) -> wasmtime::Result<Result<String, ToolError>> {
        let started = Instant::now();
        self.ctx.summary.calls = self.ctx.summary.calls.saturating_add(1);
        let call = (server.as_str(), name.as_str(), arguments_json.as_str());
        let args = match self.admit(&server, &name, &arguments_json).await {
            Ok(args) => args,
            Err(refusal) => {
                self.record(call, refusal.outcome, Some(&refusal.reason), started);
                return self.refuse(refusal);
            }
        };
        let dispatcher = Arc::clone(&self.ctx.dispatcher);
        let result = dispatcher.call(&server, &name, args).await;
        let answered = format!("{server}.{name}");
        Ok(match result {
            Ok(value) => {
                let json = value.to_string();
                let max = self.ctx.policy.policy.max_payload_bytes;
                if json.len() > max {
                    let reason =
                        format!("tool `{server}.{name}` result is {} bytes, over the {max}-byte payload limit", json.len());
                    self.record(call, outcome::DENIED, Some(&reason), started);
                    return self.refuse(Refusal::denied(reason));
                }
                self.record(call, outcome::OK, None, started);
                self.ctx.summary.answered.insert(answered);
                Ok(json)
            }
            Err(DispatchError::Failed(m)) => {
                self.record(call, outcome::TOOL_ERROR, Some(&m), started);
                Err(ToolError::Failed(m))
            }
            Err(DispatchError::Unavailable(m)) => {
                self.record(call, outcome::UNAVAILABLE, Some(&m), started);
                Err(ToolError::Unavailable(m))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{DispatchFuture, ResolveFuture, ToolPolicy};

    /// Knows `x.y` only; records the audit.
    #[derive(Default)]
    struct OneTool {
        audit: Mutex<Vec<ToolCallRecord>>,
    }

    impl ToolDispatcher for OneTool {
        fn call<'a>(&'a self, server: &'a str, tool: &'a str, _args: Value) -> DispatchFuture<'a> {
            Box::pin(async move { self.resolve(server, tool).await.map(|()| Value::Bool(true)) })
        }
        fn resolve<'a>(&'a self, server: &'a str, tool: &'a str) -> ResolveFuture<'a> {
            Box::pin(async move {
                if (server, tool) == ("x", "y") { Ok(()) } else { Err(DispatchError::Unavailable("no such tool".into())) }
            })
        }
        fn audit(&self, record: &ToolCallRecord) {
            self.audit.lock().unwrap().push(record.clone());
        }
    }

    fn ctx_with(policy: ToolPolicy) -> (ToolsCtx, Arc<OneTool>, Arc<RateLimiter>) {
        let d = Arc::new(OneTool::default());
        let rate = Arc::new(RateLimiter::default());
        let ctx = ToolsCtx::new(uuid::Uuid::now_v7(), Arc::new(CompiledPolicy::new(policy).unwrap()), d.clone(), rate.clone());
        (ctx, d, rate)
    }

    fn allow_x() -> ToolPolicy {
        ToolPolicy { allow: vec!["x.*".into()], ..Default::default() }
    }

    #[tokio::test]
    async fn denied_calls_are_violations_and_never_dispatched() {
        let (mut ctx, d, _) = ctx_with(ToolPolicy::default());
        let r = ToolsView { ctx: &mut ctx }.call_tool("memory".into(), "query_memory".into(), "{}".into()).await.unwrap();
        assert!(matches!(r, Err(ToolError::Denied(_))));
        assert!(ctx.violation.as_deref().unwrap().contains("memory.query_memory"));
        assert_eq!(ctx.summary.refusals, 1);
        assert!(ctx.summary.answered.is_empty());
        assert_eq!(d.audit.lock().unwrap()[0].outcome, "denied");
    }

    #[tokio::test]
    async fn bad_names_are_type_errors_before_the_policy() {
        let (mut ctx, d, rate) = ctx_with(ToolPolicy { allow: vec!["*.*".into()], ..Default::default() });
        let mut v = ToolsView { ctx: &mut ctx };
        for (server, tool) in [("s".repeat(70_000), "t".to_string()), ("x".into(), "t".repeat(70_000)), ("x".into(), "*".into())] {
            let r = v.call_tool(server, tool, "{}".into()).await.unwrap();
            assert!(matches!(r, Err(ToolError::InvalidArguments(_))));
        }
        assert!(ctx.violation.is_none());
        assert_eq!(ctx.summary.refusals, 3);
        assert!(rate.is_empty());
        let audit = d.audit.lock().unwrap();
        assert!(audit.iter().all(|r| r.server.len() <= 4 * MAX_SERVER_NAME + 3 && r.tool.len() <= 4 * MAX_TOOL_NAME + 3));
    }

    #[tokio::test]
    async fn allowed_calls_reach_the_dispatcher_and_only_real_tools_get_a_window() {
        let (mut ctx, _, rate) = ctx_with(allow_x());
        let mut v = ToolsView { ctx: &mut ctx };
        assert_eq!(v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap().unwrap(), "true");
        let missing = v.call_tool("x".into(), "nope".into(), "{}".into()).await.unwrap();
        assert!(matches!(missing, Err(ToolError::Unavailable(_))));
        assert!(ctx.violation.is_none());
        assert_eq!(ctx.summary.calls, 2);
        assert_eq!(ctx.summary.answered.iter().collect::<Vec<_>>(), ["x.y"]);
        assert_eq!(rate.len(), 2, "the tool's window and its caller's share");
    }

    #[tokio::test]
    async fn the_per_execution_cap_and_payload_limit_hold() {
        let (mut ctx, _, _) =
            ctx_with(ToolPolicy { max_calls_per_execution: 2, max_payload_bytes: 8, ..allow_x() });
        let mut v = ToolsView { ctx: &mut ctx };
        let big = v.call_tool("x".into(), "y".into(), r#"{"a":"0123456789"}"#.into()).await.unwrap();
        assert!(matches!(big, Err(ToolError::Denied(m)) if m.contains("payload")));
        assert!(v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap().is_ok());
        let over = v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap();
        assert!(matches!(over, Err(ToolError::Denied(m)) if m.contains("cap")), "refusals count against the cap");
    }

    #[tokio::test]
    async fn refusals_past_the_budget_trap_and_the_audit_is_bounded() {
        let (mut ctx, d, _) = ctx_with(ToolPolicy { max_refusals_per_execution: 3, ..ToolPolicy::default() });
        let mut v = ToolsView { ctx: &mut ctx };
        for _ in 0..3 {
            assert!(v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap().is_err());
        }
        let trapped = v.call_tool("x".into(), "y".into(), "{}".into()).await;
        assert!(trapped.unwrap_err().downcast_ref::<RefusalBudgetExceeded>().is_some());
        assert!(ctx.violation.is_some());

        let (mut ctx, d2, _) = ctx_with(ToolPolicy { max_calls_per_execution: 1000, ..allow_x() });
        let mut v = ToolsView { ctx: &mut ctx };
        for _ in 0..MAX_AUDITED_PER_EXECUTION + 10 {
            let _ = v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap();
        }
        let summary = ctx.finish();
        assert_eq!(summary.calls, MAX_AUDITED_PER_EXECUTION + 10);
        let audit = d2.audit.lock().unwrap();
        assert_eq!(audit.len() as u32, MAX_AUDITED_PER_EXECUTION + 1);
        assert_eq!(audit.last().unwrap().omitted, Some(10));
        drop(d);
    }

    #[tokio::test]
    async fn principals_share_a_tools_rate_limit_and_keep_their_own_audit_records() {
        let policy = ToolPolicy { rate_limit_per_minute: 3, ..allow_x() };
        let (mut alice, d, rate) = ctx_with(policy.clone());
        alice.principal = Principal::new("alice");
        let mut v = ToolsView { ctx: &mut alice };
        assert!(v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap().is_ok());
        assert!(v.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap().is_ok());
        let mut bob = ToolsCtx::new(uuid::Uuid::now_v7(), Arc::new(CompiledPolicy::new(policy).unwrap()), d.clone(), rate);
        bob.principal = Principal::new("bob");
        let ok = ToolsView { ctx: &mut bob }.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap();
        assert!(ok.is_ok());
        // The tool's limit is one for all callers (shares need several
        // principals configured; see each_principal_has_its_share_...).
        let over = ToolsView { ctx: &mut alice }.call_tool("x".into(), "y".into(), "{}".into()).await.unwrap();
        assert!(matches!(over, Err(ToolError::Denied(m)) if m.contains("all callers share")));
        {
            let audit = d.audit.lock().unwrap();
            assert_eq!(audit.iter().filter(|r| r.principal.as_deref() == Some("alice")).count(), 3);
            assert_eq!(audit.iter().filter(|r| r.principal.as_deref() == Some("bob")).count(), 1);
        }
        let inside = Principal::new("carol").scope(async { ToolsCtx::new(uuid::Uuid::now_v7(), alice.policy.clone(), d.clone(), Arc::default()).principal }).await;
        assert_eq!(inside.name(), "carol", "an execution is its caller's");
    }

    #[test]
    fn rate_limits_are_per_tool() {
        let r = RateLimiter::default();
        assert_eq!(r.acquire_within("p", "a.b", 2, 2), Ok(()));
        assert_eq!(r.acquire_within("p", "a.b", 2, 2), Ok(()));
        assert_eq!(r.acquire_within("p", "a.b", 2, 2), Err(OverLimit::Tool));
        assert_eq!(r.acquire_within("p", "a.c", 2, 2), Ok(()));
    }

    #[test]
    fn each_principal_has_its_share_and_all_share_the_tools_limit() {
        // A limit of 3 among two principals: a share of 2 each, 3 in all.
        let r = RateLimiter::default();
        assert_eq!(r.acquire_within("alice", "a.b", 3, 2), Ok(()));
        assert_eq!(r.acquire_within("alice", "a.b", 3, 2), Ok(()));
        assert_eq!(r.acquire_within("alice", "a.b", 3, 2), Err(OverLimit::Share(2)));
        assert_eq!(r.acquire_within("bob", "a.b", 3, 2), Ok(()));
        assert_eq!(r.acquire_within("bob", "a.b", 3, 2), Err(OverLimit::Tool));
        assert_eq!(r.len(), 3, "one window for the tool, one per principal");
    }
}

