//! memory-mcp: an MCP server that gives agents episodic memory, learning,
//! and safe code execution in a WebAssembly sandbox.
//!
//! The host is a thin wasmtime embedder: agent JavaScript runs in the
//! QuickJS component (`components/js-runtime`), pre-initialised and
//! precompiled once, then instantiated fresh for every call under enforced
//! limits. Episodes live in fjall ([`memory`]); pattern analysis runs in
//! analyzer components fed by a background worker ([`learning`]); saved
//! scripts become plugin components served as tools ([`plugins`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use memory_mcp::sandbox::{CompiledPolicy, Execution, Grants, NoServers, Profile, Sandbox, SandboxConfig};
//! use memory_mcp::wasm::ArtifactCache;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = SandboxConfig {
//!     limits: Profile::Default.limits(),
//!     max_concurrency: 20,
//!     max_queued: 1024,
//!     policy: CompiledPolicy::deny_all(),
//!     dispatcher: Arc::new(NoServers),
//!     grants: Grants::TOOLS,
//! };
//! let cache = ArtifactCache::new("/tmp/memory-mcp-cache");
//! let metrics = Arc::new(memory_mcp::metrics::Metrics::new());
//! let sandbox = Sandbox::load(config, &cache, memory_mcp::components::JS_RUNTIME, metrics).await?;
//! let result = sandbox
//!     .execute(Execution {
//!         id: uuid::Uuid::now_v7(),
//!         code: "return 1 + 2".into(),
//!         language: memory_mcp::sandbox::Language::JavaScript,
//!         context: serde_json::json!({"task": "add", "input": null}),
//!         limits: *sandbox.limits(),
//!     })
//!     .await;
//! println!("{}", serde_json::to_string(&result)?);
//! # Ok(()) }
//! ```

#![deny(clippy::unwrap_used)]

pub mod app;
pub mod cli;
pub mod components;
pub mod config;
pub mod embeddings;
pub mod gateway;
pub mod http;
pub mod learning;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod plugins;
pub mod principal;
pub mod sandbox;
pub mod shutdown;
pub mod sync;
pub mod warm;
pub mod wasm;
pub mod world;
