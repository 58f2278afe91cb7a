//! Settings: command-line flags over the config file over built-in
//! defaults, resolved once at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::embeddings::{FileEmbeddings, Providers};
use crate::sandbox::{DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUED, Limits, Profile, ToolPolicy};
use crate::gateway::UpstreamConfig;

/// Flags shared by the server and the subcommands that touch its data.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct CommonArgs {
    /// Where memory-mcp keeps its data. Precedence: this flag, then
    /// MEMORY_MCP_DATA_DIR, then the XDG data dir
    /// ($XDG_DATA_HOME/memory-mcp, usually ~/.local/share/memory-mcp).
    #[arg(long, global = true, env = "MEMORY_MCP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where precompiled components are cached. Default: <data dir>/cache.
    #[arg(long, global = true, env = "MEMORY_MCP_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Where plugins live (JS plugins and analyzer components, each with
    /// its policy).
    /// Precedence: this flag, then MEMORY_MCP_PLUGINS_DIR, then
    /// <data dir>/plugins.
    #[arg(long, global = true, env = "MEMORY_MCP_PLUGINS_DIR", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// A TOML config file (see README: "Configuration").
    #[arg(long, global = true, env = "MEMORY_MCP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// List every built-in tool in tools/list, not only the core ones (the
    /// others are found with search_tools and called by name or from
    /// code). Also `[mcp] list_all_tools = true` in the config file.
    #[arg(long, global = true, env = "MEMORY_MCP_LIST_ALL_TOOLS")]
    pub list_all_tools: bool,
}

/// Sandbox limits from the command line; each overrides the config file.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct SandboxArgs {
    /// Sandbox preset: restrictive (3 s, 64 MiB), default (5 s, 128 MiB),
    /// permissive (10 s, 256 MiB).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Wall-clock limit per execution, overriding the profile.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Linear-memory limit per execution, overriding the profile.
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u64>,
    /// Cap on each of stdout and stderr per execution.
    #[arg(long, value_name = "BYTES")]
    pub max_output_bytes: Option<usize>,
    /// Executions that may run at once; others wait their turn.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Executions that may wait for a slot; beyond this a call is answered
    /// at once with a busy result that says when to retry.
    #[arg(long, value_name = "N")]
    pub max_queued: Option<usize>,
}

/// The config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[sandbox]`: limits and the tool-call policy for sandboxed code; the command-line flags override them.
    #[serde(default)]
    pub sandbox: FileSandbox,
    /// Upstream MCP servers whose tools sandboxed code may call, by name.
    #[serde(default)]
    pub servers: BTreeMap<String, UpstreamConfig>,
    /// `[audit]`: how much of the tool-call audit is kept.
    #[serde(default)]
    pub audit: FileAudit,
    /// `[embeddings.providers.<name>]`: the remote embedding providers an
    /// MCP client may choose with `configure_embeddings`.
    #[serde(default)]
    pub embeddings: FileEmbeddings,
    /// `[mcp]`: what MCP clients are shown.
    #[serde(default)]
    pub mcp: FileMcp,
}

/// `[mcp]`: what MCP clients are shown.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMcp {
    /// `tools/list` shows every built-in tool, not only the core ones.
    #[serde(default)]
    pub list_all_tools: bool,
}

/// `[audit]`: the tool-call audit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAudit {
    /// Records kept before the oldest are dropped.
    #[serde(default = "default_audit_records")]
    pub max_records: u64,
}

impl Default for FileAudit {
    fn default() -> Self {
        Self { max_records: default_audit_records() }
    }
}

fn default_audit_records() -> u64 {
    crate::gateway::DEFAULT_MAX_RECORDS
}

/// `[sandbox]` in the config file: the same limits as the command-line flags (which win), plus the tool-call policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSandbox {
    /// Sandbox preset; `default` when neither this nor `--profile` is set.
    pub profile: Option<Profile>,
    /// Wall-clock limit per execution in milliseconds (at least 1), overriding the profile.
    pub timeout_ms: Option<u64>,
    /// Linear-memory limit per execution in MiB (8..=4096), overriding the profile.
    pub memory_mb: Option<u64>,
    /// Cap in bytes on each of stdout and stderr per execution, overriding the profile.
    pub max_output_bytes: Option<usize>,
    /// Executions that may run at once (1..=1024); others wait their turn.
    pub max_concurrency: Option<usize>,
    /// Executions that may wait for a slot (at most 100000); beyond this a call is answered at once as busy.
    pub max_queued: Option<usize>,
    /// Tool-call policy for sandboxed code; denies everything when absent.
    #[serde(default)]
    pub tools: ToolPolicy,
}

impl FileConfig {
    /// Reads and parses the TOML file at `path`; errors name the file and say whether reading or parsing failed (unknown keys are refused).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where memory-mcp keeps its data (flag, then MEMORY_MCP_DATA_DIR, then the XDG data dir).
    pub data_dir: PathBuf,
    /// Where precompiled components are cached (default `<data dir>/cache`).
    pub cache_dir: PathBuf,
    /// Where plugins live (default `<data dir>/plugins`).
    pub plugins_dir: PathBuf,
    /// Per-execution sandbox limits: the profile's, with any overrides from flags or the file applied.
    pub limits: Limits,
    /// Executions that may run at once.
    pub max_concurrency: usize,
    /// Executions that may wait for a slot.
    pub max_queued: usize,
    /// What sandboxed code may call, from `[sandbox.tools]`; denies everything when absent.
    pub tool_policy: ToolPolicy,
    /// Upstream MCP servers sandboxed code may call, by name, from `[servers.<name>]`.
    pub servers: BTreeMap<String, UpstreamConfig>,
    /// Tool-call audit records kept before the oldest are dropped.
    pub audit_max_records: u64,
    /// The embedding providers the operator declared.
    pub embedding_providers: Providers,
    /// `tools/list` shows every built-in tool (`--list-all-tools`).
    pub list_all_tools: bool,
}

/// The XDG default data directory.
pub fn default_data_dir() -> Result<PathBuf> {
    match dirs::data_dir() {
        Some(d) => Ok(d.join("memory-mcp")),
        None => bail!("no data directory: pass --data-dir or set MEMORY_MCP_DATA_DIR"),
    }
}

impl Settings {
    /// Resolves flags over the config file over built-in defaults; fails on an unreadable or invalid config file, no data directory, or a limit out of range.
    pub fn resolve(common: &CommonArgs, sandbox: &SandboxArgs) -> Result<Self> {
        let file = match &common.config {
            Some(p) => FileConfig::read(p)?,
            None => FileConfig::default(),
        };
        let data_dir = match &common.data_dir {
            Some(d) => d.clone(),
            None => default_data_dir()?,
        };
        let cache_dir = common.cache_dir.clone().unwrap_or_else(|| data_dir.join("cache"));
        let plugins_dir = common.plugins_dir.clone().unwrap_or_else(|| data_dir.join("plugins"));
        let fs = &file.sandbox;
        let profile = sandbox.profile.or(fs.profile).unwrap_or_default();
        let mut limits = profile.limits();
        if let Some(ms) = sandbox.timeout_ms.or(fs.timeout_ms) {
            if ms == 0 {
                bail!("timeout_ms must be at least 1");
            }
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(mb) = sandbox.memory_mb.or(fs.memory_mb) {
            if !(8..=4096).contains(&mb) {
                bail!("memory_mb must be between 8 and 4096");
            }
            limits.memory_bytes = mb * 1024 * 1024;
        }
        if let Some(b) = sandbox.max_output_bytes.or(fs.max_output_bytes) {
            limits.max_output_bytes = b;
        }
        let max_concurrency = sandbox
            .max_concurrency
            .or(fs.max_concurrency)
            .unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if !(1..=1024).contains(&max_concurrency) {
            bail!("max_concurrency must be between 1 and 1024");
        }
        let max_queued = sandbox.max_queued.or(fs.max_queued).unwrap_or(DEFAULT_MAX_QUEUED);
        if max_queued > 100_000 {
            bail!("max_queued must be at most 100000");
        }
        for (name, server) in &file.servers {
            server.transport(name).context("the [servers] table of the config file")?;
        }
        let embedding_providers =
            Providers::new(file.embeddings.providers.clone()).context("the [embeddings] table of the config file")?;
        Ok(Self {
            data_dir,
            cache_dir,
            plugins_dir,
            limits,
            max_concurrency,
            max_queued,
            tool_policy: fs.tools.clone(),
            servers: file.servers.clone(),
            audit_max_records: file.audit.max_records,
            embedding_providers,
            list_all_tools: common.list_all_tools || file.mcp.list_all_tools,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "[sandbox]\nprofile = \"permissive\"\nmemory_mb = 200\n").unwrap();
        let common = CommonArgs {
            data_dir: Some(dir.path().into()),
            config: Some(cfg),
            ..Default::default()
        };
        let s = Settings::resolve(&common, &SandboxArgs { memory_mb: Some(100), ..Default::default() }).unwrap();
        assert_eq!(s.limits.timeout, Duration::from_secs(10));
        assert_eq!(s.limits.memory_mb(), 100);
        assert_eq!(s.cache_dir, dir.path().join("cache"));
        assert_eq!(s.plugins_dir, dir.path().join("plugins"));
        let s = Settings::resolve(&common, &SandboxArgs::default()).unwrap();
        assert_eq!(s.limits.memory_mb(), 200);
    }

    #[test]
    fn embedding_providers_are_declared_and_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let common = CommonArgs { data_dir: Some(dir.path().into()), config: Some(cfg.clone()), ..Default::default() };
        std::fs::write(&cfg, "[embeddings.providers.work]\nkind = \"openai\"\nbase_url = \"https://api.example.com\"\napi_key_env = \"K\"\n").unwrap();
        let s = Settings::resolve(&common, &SandboxArgs::default()).unwrap();
        assert_eq!(s.embedding_providers.names(), vec!["local", "local-minilm", "work"]);
        for bad in [
            "[embeddings.providers.work]\nkind = \"openai\"\nbase_url = \"https://h\"\napi_key = \"sk\"\n",
            "[embeddings.providers.work]\nkind = \"openai\"\n",
            "[embeddings]\nbase_url = \"https://h\"\n",
        ] {
            std::fs::write(&cfg, bad).unwrap();
            assert!(Settings::resolve(&common, &SandboxArgs::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "[sandbox]\ntimeout = 5\n").unwrap();
        let common = CommonArgs {
            data_dir: Some(dir.path().into()),
            config: Some(cfg),
            ..Default::default()
        };
        let err = Settings::resolve(&common, &SandboxArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }
}
