//! This server's own tools, called in-process under the server name
//! `memory`: the same router, parameter checks and handlers an MCP client
//! reaches, without a round trip through JSON-RPC.
//!
//! Only the tools in [`SANDBOX_CALLABLE`] are reachable from code; those in
//! [`OPERATOR_ONLY`] are refused before their handler, whatever the policy
//! grants, and neither list may miss a built-in tool (see the test).

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, NumberOrString, Tool};
use rmcp::service::{Peer, RequestContext};
use rmcp::RoleServer;
use serde_json::{Map, Value};

use crate::mcp::Server;
use crate::sandbox::tools::DispatchError;

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

/// The tools code may call under `memory`. Their schemas are generated
/// once, not on every search.
pub fn tools() -> &'static [Tool] {
    static TOOLS: std::sync::OnceLock<Vec<Tool>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| Server::tool_list().into_iter().filter(|t| sandbox_callable(&t.name)).collect())
}

/// The live server and the session it serves.
pub struct LocalTools {
    server: Server,
    peer: Peer<RoleServer>,
}

impl LocalTools {
    pub fn new(server: Server, peer: Peer<RoleServer>) -> Self {
        Self { server, peer }
    }

    pub async fn call(&self, tool: &str, args: Map<String, Value>) -> Result<Value, DispatchError> {
        if OPERATOR_ONLY.contains(&tool) {
            return Err(DispatchError::Unavailable(format!(
                "`memory.{tool}` is for the operator's MCP client only and cannot be called from inside the sandbox"
            )));
        }
        if !sandbox_callable(tool) {
            return Err(DispatchError::Unavailable(format!("this server has no tool `{tool}` that code may call")));
        }
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let mut context = RequestContext::new(NumberOrString::Number(0), self.peer.clone());
        // The call is made by the execution's principal (the caller's, in
        // this task), not by the in-process session.
        context.extensions.insert(crate::principal::Principal::current());
        let call = ToolCallContext::new(&self.server, params, context);
        match self.server.route(call).await {
            Ok(CallToolResponse::Complete(result)) => super::result::into_value(result),
            Ok(_) => Err(DispatchError::Unavailable(format!("`memory.{tool}` asked for input, which code cannot give"))),
            Err(e) if e.message == "tool not found" => {
                Err(DispatchError::Unavailable(format!("this server has no tool `{tool}`")))
            }
            Err(e) => Err(DispatchError::Failed(e.message.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_tool_is_classified_exactly_once() {
        let names = Server::tool_names();
        for name in &names {
            let (code, operator) = (SANDBOX_CALLABLE.contains(&name.as_str()), OPERATOR_ONLY.contains(&name.as_str()));
            assert!(
                code ^ operator,
                "`{name}` must be in exactly one of SANDBOX_CALLABLE and OPERATOR_ONLY (gateway/local.rs): \
                 may sandboxed code call it? Tools that change configuration or persist code may not."
            );
        }
        for listed in SANDBOX_CALLABLE.iter().chain(OPERATOR_ONLY) {
            assert!(names.iter().any(|n| n == listed), "`{listed}` is classified but is not a tool");
        }
    }

    #[test]
    fn the_sandbox_catalog_has_no_operator_only_tool() {
        let listed: Vec<&str> = tools().iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(listed.len(), SANDBOX_CALLABLE.len());
        for t in OPERATOR_ONLY {
            assert!(!listed.contains(t), "{t}");
        }
    }
}
