//! Real upstream MCP servers from npm (installed into target/npm by
//! scripts/npm-servers.sh) and config files that declare them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `target/npm/node_modules/@modelcontextprotocol/<name>/dist/index.js`.
pub fn npm_server(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/npm/node_modules/@modelcontextprotocol")
        .join(name)
        .join("dist/index.js");
    assert!(path.exists(), "{} is missing: run scripts/npm-servers.sh", path.display());
    path
}

/// A `[servers.NAME]` table spawning `server-everything` over stdio. With
/// `pid_file`, the shell records the server's pid there (it `exec`s node,
/// so the pid is node's) for tests that kill it.
pub fn everything(name: &str, pid_file: Option<&Path>) -> String {
    let js = npm_server("server-everything");
    match pid_file {
        None => format!("[servers.{name}]\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\n", js.display().to_string()),
        Some(pid) => format!(
            "[servers.{name}]\ncommand = \"sh\"\nargs = [\"-c\", {:?}]\n",
            format!("echo $$ > '{}'; exec node '{}' stdio", pid.display(), js.display())
        ),
    }
}

/// A `[servers.NAME]` table spawning `server-filesystem` rooted at `root`.
pub fn filesystem(name: &str, root: &Path) -> String {
    let js = npm_server("server-filesystem");
    format!(
        "[servers.{name}]\ncommand = \"node\"\nargs = [{:?}, {:?}]\n",
        js.display().to_string(),
        root.display().to_string()
    )
}

/// The `[sandbox.tools]` policy.
pub fn policy(allow: &[&str], extra: &str) -> String {
    let list: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    format!("[sandbox.tools]\nallow = [{}]\n{extra}", list.join(", "))
}

/// Writes `text` as a config file in `dir` and returns its path.
pub fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("memory-mcp.toml");
    std::fs::write(&path, text).expect("write config");
    path
}
