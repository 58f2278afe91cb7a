//! This server's tools as sandboxed code calls them (`memory.<tool>`): the
//! MCP layer's side of [`OwnTools`], which the gateway defines. A call goes
//! to the same handler, with the same parameter checks, as an MCP client's
//! `tools/call`, without JSON-RPC; a name no handler here takes is a typed
//! [`OwnToolError::NotFound`].

use std::future::Future;
use std::pin::Pin;

use rmcp::model::{CallToolResult, Extensions};
use serde_json::{Map, Value};

use super::params::Parameters;
use super::server::Server;
use crate::gateway::{OwnToolError, OwnTools};
use crate::principal::Principal;

/// Dispatches `memory.<tool>` calls to the handlers named here (those with
/// only parameters; `get_tool_audit` also takes the caller).
macro_rules! own_tools {
    ($($name:ident),* $(,)?) => {
        /// The built-in tools code can reach through [`OwnTools`].
        #[cfg(test)]
        const DISPATCHED: &[&str] = &["get_tool_audit", $(stringify!($name)),*];

        impl Server {
            /// Runs the handler of `tool` on `args`.
            async fn dispatch(&self, tool: &str, args: Map<String, Value>) -> Result<CallToolResult, OwnToolError> {
                let result = match tool {
                    // The caller is the execution's principal (this task's).
                    "get_tool_audit" => {
                        let mut extensions = Extensions::new();
                        extensions.insert(Principal::current());
                        self.get_tool_audit(Parameters::parse(tool, args), extensions).await
                    }
                    $(stringify!($name) => self.$name(Parameters::parse(tool, args)).await,)*
                    _ => return Err(OwnToolError::NotFound(tool.to_string())),
                };
                result.map_err(|e| OwnToolError::Failed(e.message.to_string()))
            }
        }
    };
}

own_tools!(
    create_episode,
    add_episode_step,
    complete_episode,
    update_episode,
    delete_episode,
    get_episode,
    get_episode_timeline,
    bulk_episodes,
    query_memory,
    query_semantic_memory,
    analyze_patterns,
    advanced_pattern_analysis,
    search_patterns,
    recommend_patterns,
    record_pattern_feedback,
    quality_metrics,
    search_tools,
    describe_tools,
    list_plugins,
    health_check,
    get_metrics,
);

impl OwnTools for Server {
    fn call_own<'a>(
        &'a self,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<CallToolResult, OwnToolError>> + Send + 'a>> {
        Box::pin(self.dispatch(tool, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{OPERATOR_ONLY, SANDBOX_CALLABLE};

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
    fn every_tool_code_may_call_is_dispatched_and_no_other() {
        let mut dispatched = DISPATCHED.to_vec();
        let mut callable = SANDBOX_CALLABLE.to_vec();
        dispatched.sort_unstable();
        callable.sort_unstable();
        assert_eq!(dispatched, callable, "own_tools! in mcp/own_tools.rs must list exactly gateway::SANDBOX_CALLABLE");
    }
}
