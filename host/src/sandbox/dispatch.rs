//! What an admitted tool call goes out to and leaves behind: the
//! [`ToolDispatcher`] a router implements (and [`NoServers`], the router
//! with no servers), why a call was not answered ([`DispatchError`]), and
//! the audit record of every call ([`ToolCallRecord`], its [`outcome`]s).
//! The checks before a call goes out are in [`super::tools`].

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

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

/// What [`ToolDispatcher::call`] returns: the tool's structured result, or
/// why it was not answered.
pub type DispatchFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, DispatchError>> + Send + 'a>>;
/// What [`ToolDispatcher::resolve`] returns: `Ok` once the tool is known
/// to exist.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DispatchError>> + Send + 'a>>;

/// Routes an allowed call to a real MCP server, and keeps the audit.
pub trait ToolDispatcher: Send + Sync + 'static {
    /// Calls `server.tool` with `args` (already checked against the policy and
    /// payload bound) and resolves to its result.
    fn call<'a>(&'a self, server: &'a str, tool: &'a str, args: Value) -> DispatchFuture<'a>;

    /// Whether `server` offers `tool` (connecting to it if need be);
    /// `Unavailable` if not. Asked before any per-tool state is kept.
    fn resolve<'a>(&'a self, server: &'a str, tool: &'a str) -> ResolveFuture<'a>;

    /// Persists one call's record, refused calls included.
    fn audit(&self, _record: &ToolCallRecord) {}
}

/// A router with no servers configured: every call is unavailable.
#[derive(Debug, Default)]
pub struct NoServers;

impl ToolDispatcher for NoServers {
    fn call<'a>(&'a self, server: &'a str, tool: &'a str, _args: Value) -> DispatchFuture<'a> {
        Box::pin(async move { self.resolve(server, tool).await.map(|()| Value::Null) })
    }

    fn resolve<'a>(&'a self, server: &'a str, _tool: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            Err(DispatchError::Unavailable(format!("no MCP server named `{server}` is configured")))
        })
    }
}

/// How a call ended, as audited.
pub mod outcome {
    /// The tool answered with a result.
    pub const OK: &str = "ok";
    /// The tool answered with an error (`isError`).
    pub const TOOL_ERROR: &str = "tool_error";
    /// The server or tool is unknown, down or timed out.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The server or tool name breaks the naming rule, or the arguments are
    /// not a JSON object; nothing was sent.
    pub const INVALID_ARGUMENTS: &str = "invalid_arguments";
    /// The policy does not allow the tool, the arguments are over its
    /// payload bound, or a call cap or rate limit is spent; nothing was sent.
    pub const DENIED: &str = "denied";
    /// The summary of an execution's calls past the audit bound.
    pub const OMITTED: &str = "omitted";

    /// Outcomes of calls that reached an existing tool.
    pub fn reached_tool(outcome: &str) -> bool {
        outcome == OK || outcome == TOOL_ERROR
    }
}

/// One tool call, as audited.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ToolCallRecord {
    /// When the call was made.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The execution that made it (`execution_id` in its result).
    pub execution_id: uuid::Uuid,
    /// The server, as the code named it (cut to 64 characters).
    pub server: String,
    /// The tool, as the code named it (cut to 128 characters).
    pub tool: String,
    /// Size of the arguments as JSON text.
    pub args_bytes: usize,
    /// blake3 of the arguments' JSON text (the arguments are not kept).
    pub args_blake3: String,
    /// ok, tool_error, unavailable, invalid_arguments, denied, or omitted
    /// (the count of an execution's calls past the audit bound).
    pub outcome: String,
    /// From the call to its answer (or refusal), in microseconds.
    pub latency_us: u64,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The principal whose execution made it (`local` over stdio); absent
    /// in records written before principals, which count as `local`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// With outcome `omitted`: how many calls were not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<u64>,
}
