//! Server and tool names, as sandboxed code hands them to the host: data
//! with bounds, checked before the policy is consulted and before any of
//! them becomes a key, a log line or a map entry.
//!
//! - A server name is 1–64 of `a-z 0-9 _ -`, starting with a letter (the
//!   rule `[servers.NAME]` tables follow in the config).
//! - A tool name is 1–128 of `A-Z a-z 0-9 _ - .` (the MCP spec's rule).
//!
//! Neither alphabet holds a glob metacharacter, so a name that passes can
//! be used as an exact `server.tool` pattern in a policy.
//!
//! ```
//! use memory_mcp::sandbox::{check_tool_name, shorten};
//! assert!(check_tool_name("memory", "query_memory").is_ok());
//! assert!(check_tool_name("memory", "*").is_err());
//! assert_eq!(shorten(&"x".repeat(1000), 8), "xxxxxxxx…");
//! ```

/// The longest server name.
pub const MAX_SERVER_NAME: usize = 64;
/// The longest tool name (MCP's limit).
pub const MAX_TOOL_NAME: usize = 128;

/// A name that is not one. Holds a shortened copy, so an error message
/// stays small whatever the guest sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolNameError {
    /// The server name breaks the rule (holds a shortened copy).
    #[error("server name {0:?} is invalid: use 1-64 of a-z, 0-9, `_` and `-`, starting with a letter")]
    Server(String),
    /// The tool name breaks the rule (holds a shortened copy).
    #[error("tool name {0:?} is invalid: use 1-128 of A-Z, a-z, 0-9, `_`, `-` and `.`")]
    Tool(String),
}

/// Whether `name` follows the server-name rule.
pub fn is_server_name(name: &str) -> bool {
    (1..=MAX_SERVER_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// Whether `name` follows MCP's tool-name rule.
pub fn is_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
}

/// Checks a `server`/`tool` pair from code.
pub fn check(server: &str, tool: &str) -> Result<(), ToolNameError> {
    if !is_server_name(server) {
        return Err(ToolNameError::Server(shorten(server, 40)));
    }
    if !is_tool_name(tool) {
        return Err(ToolNameError::Tool(shorten(tool, 40)));
    }
    Ok(())
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        assert!(check("everything", "echo").is_ok());
        assert!(check("fs-2", "read_file.v2-x").is_ok());
        assert!(check(&"s".repeat(64), &"t".repeat(128)).is_ok());
        for (server, tool) in [
            ("", "t"),
            ("S", "t"),
            ("1s", "t"),
            (&"s".repeat(65) as &str, "t"),
            ("s", ""),
            ("s", "*"),
            ("s", "a b"),
            ("s", "a/b"),
            ("s", "é"),
            ("s", &"t".repeat(129)),
        ] {
            assert!(check(server, tool).is_err(), "{server:?}.{tool:?}");
        }
    }

    #[test]
    fn errors_stay_small() {
        let e = check(&"s".repeat(70_000), "t").unwrap_err().to_string();
        assert!(e.len() < 200, "{}", e.len());
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
