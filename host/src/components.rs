//! The built-in components, embedded so the binary alone runs.

/// The QuickJS runtime (`components/js-runtime`), before pre-initialisation.
pub const JS_RUNTIME: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_JS_RUNTIME"));

/// The template of a plugin granted tools (`components/js-plugin`, world
/// `tool-plugin`), before the builder snapshots a script into it.
pub const JS_PLUGIN: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_JS_PLUGIN"));

/// The template of a plugin granted no tools (`components/js-plugin-pure`,
/// world `pure-plugin`: no tools import at all).
pub const JS_PLUGIN_PURE: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_JS_PLUGIN_PURE"));

/// The built-in pattern analyzer (`components/pattern-analyzer`).
pub const PATTERN_ANALYZER: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_PATTERN_ANALYZER"));

/// The local embedder (`components/embedder-local`): no network.
pub const EMBEDDER_LOCAL: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_EMBEDDER_LOCAL"));
/// The model embedder (all-MiniLM-L6-v2 with candle); the weights are not
/// in it: it reads them from the one directory it is granted.
pub const EMBEDDER_MINILM: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_EMBEDDER_MINILM"));

/// The Ollama embedder (`components/embedder-ollama`), over `wasi:http`.
pub const EMBEDDER_OLLAMA: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_EMBEDDER_OLLAMA"));

/// The OpenAI-compatible embedder (`components/embedder-openai`), over
/// `wasi:http`.
pub const EMBEDDER_OPENAI: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_EMBEDDER_OPENAI"));

/// The TypeScript stripper (`components/ts-strip`): swc's type stripper,
/// so agent TypeScript is parsed inside the sandbox.
pub const TS_STRIP: &[u8] = include_bytes!(env!("MEMORY_MCP_COMPONENT_TS_STRIP"));
