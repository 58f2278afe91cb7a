//! This server's own tools, called in-process under the server name
//! `memory`: the same router, parameter checks and handlers an MCP client
//! reaches, without a round trip through JSON-RPC.

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, NumberOrString, Tool};
use rmcp::service::{Peer, RequestContext};
use rmcp::RoleServer;
use serde_json::{Map, Value};

use crate::mcp::MemoryServer;
use crate::sandbox::tools::DispatchError;

/// Tools the sandbox never reaches, whatever the policy says: running code
/// from code would nest executions inside one another's permits.
pub const NOT_FROM_SANDBOX: &[&str] = &["execute_agent_code"];

/// The tools code may call under `memory`. Their schemas are generated
/// once, not on every search.
pub fn tools() -> &'static [Tool] {
    static TOOLS: std::sync::OnceLock<Vec<Tool>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| {
        MemoryServer::tool_list().into_iter().filter(|t| !NOT_FROM_SANDBOX.contains(&t.name.as_ref())).collect()
    })
}

/// The live server and the session it serves.
pub struct LocalTools {
    server: MemoryServer,
    peer: Peer<RoleServer>,
}

impl LocalTools {
    pub fn new(server: MemoryServer, peer: Peer<RoleServer>) -> Self {
        Self { server, peer }
    }

    pub async fn call(&self, tool: &str, args: Map<String, Value>) -> Result<Value, DispatchError> {
        if NOT_FROM_SANDBOX.contains(&tool) {
            return Err(DispatchError::Unavailable(format!("`memory.{tool}` cannot be called from inside the sandbox")));
        }
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let context = RequestContext::new(NumberOrString::Number(0), self.peer.clone());
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
