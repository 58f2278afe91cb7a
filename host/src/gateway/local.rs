//! This server's own tools, as sandboxed code reaches them under the
//! server name `memory`: in-process, through [`OwnTools`], which the MCP
//! layer implements with the same parameter checks and handlers an MCP
//! client reaches, without a round trip through JSON-RPC. The gateway
//! needs nothing of the MCP layer.
//!
//! Only the tools in [`SANDBOX_CALLABLE`] are reachable from code; those in
//! [`OPERATOR_ONLY`] are refused before their handler, whatever the policy
//! grants, and neither list may miss a built-in tool (see `mcp::own_tools`).

use std::future::Future;
use std::pin::Pin;

use rmcp::model::CallToolResult;
use serde_json::{Map, Value};

/// Tools sandboxed code may call under `memory` (when its policy allows):
/// they read and record episodes and patterns, search, and report. Every
/// built-in tool is in exactly one of this list and [`OPERATOR_ONLY`]; a
/// tool in neither is unreachable from code (and fails this module's test).
pub const SANDBOX_CALLABLE: &[&str] = &[
    // Episodes.
    "create_episode",
    "add_episode_step",
    "complete_episode",
    "update_episode",
    "delete_episode",
    "get_episode",
    "get_episode_timeline",
    "bulk_episodes",
    "query_memory",
    "query_semantic_memory",
    // Patterns.
    "analyze_patterns",
    "advanced_pattern_analysis",
    "search_patterns",
    "recommend_patterns",
    "record_pattern_feedback",
    "quality_metrics",
    // Tools, plugins and the server, read only.
    "search_tools",
    "describe_tools",
    "get_tool_audit",
    "list_plugins",
    "health_check",
    "get_metrics",
];

/// Tools only the operator's MCP client may call, whatever the policy
/// says (no glob grants them, and they are not in the sandbox's catalog):
/// running code from code would nest executions inside one another's
/// permits; the others change the server's configuration (where its
/// secrets are sent) or persist code, and would let code widen its own
/// reach.
pub const OPERATOR_ONLY: &[&str] =
    &["execute_agent_code", "configure_embeddings", "test_embeddings", "save_plugin", "remove_plugin"];

/// Whether code may reach `memory.<tool>` at all.
pub fn sandbox_callable(tool: &str) -> bool {
    SANDBOX_CALLABLE.contains(&tool)
}

/// This server's built-in tools, called in-process. The MCP layer
/// implements it; the gateway holds it weakly (the server owns the
/// gateway, not the other way round).
pub trait OwnTools: Send + Sync {
    /// Calls the built-in tool `tool` with `args`, as the current
    /// principal (`crate::principal::Principal::current`).
    fn call_own<'a>(
        &'a self,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<CallToolResult, OwnToolError>> + Send + 'a>>;
}

/// Why a built-in tool could not be called (a tool that ran and failed is
/// an `isError` result, not this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnToolError {
    /// No built-in tool that code may call has this name.
    #[error("this server has no tool `{0}`")]
    NotFound(String),
    /// The handler failed with a protocol error.
    #[error("{0}")]
    Failed(String),
}
