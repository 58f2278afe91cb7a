//! Subcommands that work on the plugins directory without a running
//! server: `memory-mcp plugin …` ([`run_plugin`]) and `memory-mcp analyzer …`
//! ([`run_analyzer`]). They sit above the layers they combine (the resolved
//! [`crate::config::Settings`], the plugins directory, the analyzer
//! contract and the MCP tool names a plugin may not take), so none of
//! those layers depends back on them.

mod analyzer;
mod plugin;

pub use analyzer::{AnalyzerCommand, run as run_analyzer};
pub use plugin::{PluginCommand, run as run_plugin};
