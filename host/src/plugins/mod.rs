//! Plugins: agent JavaScript or TypeScript compiled ahead of time (QuickJS
//! bytecode, through Javy) into a standalone component, bound to a policy,
//! kept in the plugins directory and served as an MCP tool.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use memory_mcp::plugins::{BuildRequest, Builder, PluginDir, PluginPolicy};
//! use memory_mcp::sandbox::{Language, Profile};
//! use memory_mcp::wasm::{ArtifactCache, Metering, build_engine};
//!
//! let engine = build_engine(Metering::Epoch { max_concurrency: 2, max_memory_bytes: 256 << 20 })?;
//! let cache = ArtifactCache::new("/tmp/memory-mcp-cache");
//! let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
//! let built = Builder::embedded(&engine, &cache, Profile::Default.limits())
//!     .build(
//!         BuildRequest {
//!             name: "word_count".into(),
//!             description: "Counts the words in `text`.".into(),
//!             source: "return context.input.text.split(/\\s+/).filter(Boolean).length;".into(),
//!             language: Language::JavaScript,
//!             input_schema: None,
//!             policy: PluginPolicy::default(),
//!         },
//!         deadline,
//!         &|_| (),
//!     )
//!     .await?;
//! PluginDir::new("/tmp/plugins").write(&built)?;
//! # Ok(()) }
//! ```
//!
//! - `builder.rs`: source → component (snapshot of a template), deterministic.
//! - `layout.rs`: the plugins directory, `tools/` and `analyzers/`, one
//!   namespace for both, and the migration of the old flat layout.
//! - `dir.rs`: the files on disk, written atomically, checked on read;
//!   `analyzer_dir.rs`: the same for third-party pattern analyzers.
//! - `policy.rs` and `analyzer_policy.rs`: the two kinds' policy files.
//! - `file.rs`: every file there is read as untrusted input.
//! - `manifest.rs`, `name.rs`: the data and its rules.
//! - `registry.rs`: the plugins a running server has loaded.
//! - `inspect.rs`: validation and WIT, as `wasm-tools` shows them.

pub(crate) mod analyzer_dir;
pub(crate) mod analyzer_policy;
mod builder;
mod dir;
mod file;
pub(crate) mod inspect;
pub(crate) mod layout;
mod manifest;
mod name;
mod policy;
mod registry;

pub use builder::{BuildRequest, Builder, Stage};
pub use dir::PluginDir;
pub use file::{MAX_POLICY_BYTES, MAX_WASM_BYTES, ReadError, read_named, read_untrusted};
pub use manifest::{Manifest, PluginWorld};
pub use name::{NameError, validate as validate_name};
pub use policy::{PluginLimits, PluginPolicy};
pub use registry::{LoadedPlugin, MAX_SUBSCRIPTIONS, Registry};

/// A built plugin's files, not yet written.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest (name, description, world, checksums of the other files).
    pub manifest: Manifest,
    /// The plugin component: the template with the script snapshotted in.
    pub wasm: Vec<u8>,
    /// The plugin's tool-call policy, as `policy.toml` text.
    pub policy_toml: String,
    /// The script as submitted (TypeScript before stripping), kept beside
    /// the component for reading and rebuilding.
    pub source: String,
}

/// Why a plugin (or, for reading, installing and removing, an analyzer)
/// could not be built, read, loaded or removed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin name breaks the naming rule or is reserved.
    #[error(transparent)]
    Name(#[from] name::NameError),
    /// A file in the plugins directory could not be read safely.
    #[error(transparent)]
    Read(#[from] file::ReadError),
    /// The build request is malformed (empty description, bad input schema,
    /// a policy the server would refuse).
    #[error("{0}")]
    Input(String),
    /// The script failed to compile in QuickJS.
    #[error("the script does not compile: {message}{}", position(*.line, *.column))]
    Compile {
        /// QuickJS's message.
        message: String,
        /// 1-based line in the script, where known.
        line: Option<u32>,
        /// 1-based column in the script, where known.
        column: Option<u32>,
    },
    /// The build ran past the plugin's time or memory limit.
    #[error("{0}")]
    Limit(String),
    /// The plugin's `policy.toml` does not parse or does not check.
    #[error("policy: {0}")]
    Policy(String),
    /// The plugin's `manifest.json` does not parse or does not check.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A file the manifest names is not in the plugin's directory.
    #[error("file {0} is missing")]
    Missing(String),
    /// A file was changed after the build: its blake3 is not the manifest's.
    #[error("{file} does not match its checksum in the manifest (want blake3 {want}, found {got}): it was changed after the build")]
    Checksum {
        /// The file's name in the plugin's directory.
        file: String,
        /// The blake3 hex the manifest records.
        want: String,
        /// The blake3 hex of the file as it is.
        got: String,
    },
    /// The wasm is not a valid component, or not of the world it claims.
    #[error("not a valid component: {0}")]
    Invalid(String),
    /// No plugin (or analyzer) by that name is installed.
    #[error("no plugin named {0:?}")]
    NotFound(String),
    /// A plugin by that name exists and the request did not ask to replace it.
    #[error("a plugin named {0:?} exists; pass \"replace\": true to replace it, or pick another name")]
    Exists(String),
    /// Reading, writing or removing files in the plugins directory failed.
    #[error("{0}")]
    Io(String),
    /// A fault of this server (a task that panicked, a template that would not
    /// prepare), not of the request.
    #[error("{0}")]
    Internal(String),
    /// The caller cancelled the build; nothing was written.
    #[error("cancelled by the client; nothing was written")]
    Cancelled,
}

fn position(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}
