//! The MCP server: rmcp tool routers over the sandbox, the episode store
//! and learning.

pub mod framing;
mod embedding_tools;
mod memory_tools;
pub mod params;
mod pattern_tools;
mod server;

pub use server::{MemoryServer, RuntimeState};

use anyhow::{Context as _, Result};
use rmcp::ServiceExt as _;

/// Serves MCP on this process's stdin/stdout until the client goes away.
pub async fn serve_stdio(server: MemoryServer, max_frame: usize) -> Result<()> {
    let (input, output) = framing::filtered(tokio::io::stdin(), tokio::io::stdout(), max_frame);
    let running = server
        .serve((input, output))
        .await
        .context("starting the MCP session")?;
    let reason = running.waiting().await.context("MCP session failed")?;
    tracing::info!(?reason, "MCP session ended");
    Ok(())
}
