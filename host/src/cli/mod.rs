//! Subcommands that work on the plugins directory without a running
//! server: `memory-mcp plugin …` ([`plugin`]) and `memory-mcp analyzer …`
//! ([`analyzer`]). They sit above the layers they combine (the resolved
//! [`crate::config::Settings`], the plugins directory, the analyzer
//! contract and the MCP tool names a plugin may not take), so none of
//! those layers depends back on them.

pub mod analyzer;
pub mod plugin;
