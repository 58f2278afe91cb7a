//! The built-in components, embedded so the binary alone runs.

/// The QuickJS runtime (`components/js-runtime`), before pre-initialisation.
pub const JS_RUNTIME: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_JS_RUNTIME"));

/// The built-in pattern analyzer (`components/pattern-analyzer`).
pub const PATTERN_ANALYZER: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_PATTERN_ANALYZER"));
