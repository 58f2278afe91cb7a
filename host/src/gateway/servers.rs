//! Upstream MCP servers as the operator declares them in `[servers.NAME]`
//! of the config file: a command to spawn (stdio) or a Streamable HTTP URL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The server name this server's own tools are called under.
pub const LOCAL_SERVER: &str = "memory";

/// One `[servers.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Program to spawn; the server speaks MCP on its stdin/stdout.
    pub command: Option<String>,
    /// Arguments for `command`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for `command` (the rest is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory for `command`.
    pub cwd: Option<PathBuf>,
    /// A Streamable HTTP endpoint, e.g. `http://127.0.0.1:8001/mcp`.
    pub url: Option<String>,
    /// Environment variable holding a bearer token sent to `url`.
    pub bearer_token_env: Option<String>,
    /// Connecting and listing tools must finish within this.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Each tool call must finish within this (and within the execution's
    /// own deadline).
    #[serde(default = "default_call_ms")]
    pub call_timeout_ms: u64,
}

fn default_connect_ms() -> u64 {
    10_000
}
fn default_call_ms() -> u64 {
    30_000
}

/// How to reach an upstream, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process spoken to over stdio.
    Stdio {
        /// The program to run.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Environment variables set for it, on top of this server's.
        env: BTreeMap<String, String>,
        /// Its working directory (default: this server's).
        cwd: Option<PathBuf>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// The endpoint, http:// or https://.
        url: String,
        /// The environment variable holding the bearer token to send, if any.
        bearer_token_env: Option<String>,
    },
}

/// Why a `[servers.NAME]` table was refused at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// The table's name breaks the server-name rule.
    #[error("server name {0:?} is invalid: use 1-64 of a-z, 0-9, `_` and `-`, starting with a letter")]
    Name(String),
    /// The table is named `memory`, which is this server's own.
    #[error("server name `memory` is reserved for this server's own tools")]
    Reserved,
    /// The table sets both or neither of `command` and `url`.
    #[error("[servers.{0}] needs exactly one of `command` (stdio) or `url` (Streamable HTTP)")]
    Transport(String),
    /// The table's (first) `url` (second) is not http:// or https://.
    #[error("[servers.{0}] url {1:?} must start with http:// or https://")]
    Url(String, String),
    /// The table's connect or call timeout is out of range.
    #[error("[servers.{0}] timeouts must be between 1 ms and 10 minutes")]
    Timeout(String),
}

/// A valid server name: it becomes `tools.<name>` in JS and a directory in
/// `tools export`, so it is kept to a safe identifier-like alphabet.
pub fn validate_name(name: &str) -> Result<(), ServerConfigError> {
    if !crate::sandbox::tool_names::is_server_name(name) {
        return Err(ServerConfigError::Name(name.to_string()));
    }
    if name == LOCAL_SERVER {
        return Err(ServerConfigError::Reserved);
    }
    Ok(())
}

impl UpstreamConfig {
    /// Checks the table and says how to connect.
    pub fn transport(&self, name: &str) -> Result<Transport, ServerConfigError> {
        validate_name(name)?;
        let limit = 1..=600_000;
        if !limit.contains(&self.connect_timeout_ms) || !limit.contains(&self.call_timeout_ms) {
            return Err(ServerConfigError::Timeout(name.to_string()));
        }
        match (&self.command, &self.url) {
            (Some(command), None) if !command.is_empty() => Ok(Transport::Stdio {
                command: command.clone(),
                args: self.args.clone(),
                env: self.env.clone(),
                cwd: self.cwd.clone(),
            }),
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ServerConfigError::Url(name.to_string(), url.clone()));
                }
                Ok(Transport::Http { url: url.clone(), bearer_token_env: self.bearer_token_env.clone() })
            }
            _ => Err(ServerConfigError::Transport(name.to_string())),
        }
    }

    /// How long connecting (and the MCP handshake) may take.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// How long one tool call may take before it is answered unavailable.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpstreamConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn stdio_and_http_servers_parse() {
        let s = parse("command = \"node\"\nargs = [\"x.js\", \"stdio\"]\n").unwrap();
        assert!(matches!(s.transport("everything").unwrap(), Transport::Stdio { .. }));
        assert_eq!(s.call_timeout(), Duration::from_secs(30));
        let h = parse("url = \"http://127.0.0.1:8001/mcp\"\ncall_timeout_ms = 500\n").unwrap();
        assert!(matches!(h.transport("web").unwrap(), Transport::Http { .. }));
    }

    #[test]
    fn bad_tables_are_refused_with_reasons() {
        assert!(parse("command = \"node\"\nwhat = 1\n").is_err());
        let both = parse("command = \"node\"\nurl = \"http://x\"\n").unwrap();
        assert!(matches!(both.transport("a"), Err(ServerConfigError::Transport(_))));
        let ftp = parse("url = \"ftp://x\"\n").unwrap();
        assert!(matches!(ftp.transport("a"), Err(ServerConfigError::Url(..))));
        let ok = parse("command = \"node\"\n").unwrap();
        assert!(matches!(ok.transport("memory"), Err(ServerConfigError::Reserved)));
        assert!(matches!(ok.transport("Bad.Name"), Err(ServerConfigError::Name(_))));
        assert!(matches!(ok.transport("../x"), Err(ServerConfigError::Name(_))));
    }
}
