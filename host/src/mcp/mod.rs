//! The MCP server: rmcp tool routers over the sandbox, the episode store
//! and learning.

mod framing;
mod core_tools;
mod detect;
mod embedding_tools;
mod gateway_tools;
mod handler;
mod memory_resources;
mod memory_tools;
mod own_tools;
mod params;
mod pattern_tools;
mod plugin_tools;
mod portable;
mod progress;
mod prompts;
mod quality_report;
mod recent;
mod server;
mod subscriptions;
mod starting;
mod surface;
mod unwind;

pub use framing::{DEFAULT_MAX_FRAME_BYTES, filtered as filter_frames};
pub use portable::problems as portability_problems;
pub use server::{RuntimeState, Server};
pub use starting::serve_stdio;
pub use surface::listed_by_default;
pub use unwind::{caught, panics_caught};

use anyhow::{Context as _, Result};
use rmcp::service::RunningService;
use rmcp::{RoleServer, ServiceExt as _};

/// Whether starting the session failed only because the client went away.
fn closed_before_start(e: &anyhow::Error) -> bool {
    use rmcp::service::ServerInitializeError as E;
    e.chain().any(|c| matches!(c.downcast_ref::<E>(), Some(E::ConnectionClosed(_) | E::Cancelled)))
}

/// Starts a session on `transport`. (The plugins registry learns of the
/// session when it is initialized, `on_initialized`, as every HTTP
/// session's does.)
pub async fn serve<T, E, A>(server: Server, transport: T) -> Result<RunningService<RoleServer, Server>>
where
    T: rmcp::transport::IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    server.serve(transport).await.context("starting the MCP session")
}
