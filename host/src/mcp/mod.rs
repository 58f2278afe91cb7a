//! The MCP server: rmcp tool routers over the sandbox, the episode store
//! and learning.

pub mod framing;
mod core_tools;
mod detect;
mod embedding_tools;
mod gateway_tools;
mod handler;
mod memory_resources;
mod memory_tools;
mod own_tools;
pub mod params;
mod pattern_tools;
mod plugin_tools;
pub mod portable;
mod progress;
mod prompts;
mod quality_report;
mod recent;
mod server;
mod subscriptions;
pub mod starting;
pub mod surface;
pub mod unwind;

pub use server::{Server, RuntimeState};

use anyhow::{Context as _, Result};
use rmcp::service::RunningService;
use rmcp::{RoleServer, ServiceExt as _};

/// Serves MCP on this process's stdin/stdout until the client goes away.
/// A client that leaves before its first request is a normal end, not an
/// error.
pub async fn serve_stdio(server: Server, max_frame: usize) -> Result<()> {
    let (input, output) = framing::filtered(tokio::io::stdin(), tokio::io::stdout(), max_frame);
    let running = match serve(server, (input, output)).await {
        Ok(r) => r,
        Err(e) if closed_before_start(&e) => {
            tracing::info!("the client closed the connection before its first request");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let reason = running.waiting().await.context("MCP session failed")?;
    tracing::info!(?reason, "MCP session ended");
    Ok(())
}

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
