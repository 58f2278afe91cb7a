//! A plugin's manifest, `NAME.plugin.json`: what the plugin is and the
//! blake3 of each of its files. It is written last, so a plugin exists only
//! once all its files are in place, and a file that no longer matches its
//! checksum refuses the plugin. [`FileSum`] and its check,
//! [`FileSum::read_checked`], are shared with the analyzers' manifests
//! ([`super::analyzer_dir`]): both kinds are held to their files the same way.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PluginError;
use super::file::read_untrusted;

use crate::sandbox::Language;

/// The manifest format this build reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// A JS tool plugin's manifest file is `NAME` and this suffix.
pub const MANIFEST_SUFFIX: &str = ".plugin.json";

/// The world a plugin component is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    /// Imports `memory-mcp:tool-call/tools`: its policy grants tools.
    ToolPlugin,
    /// Imports no tool interface: its policy grants none.
    PurePlugin,
}

impl PluginWorld {
    /// The world's WIT name (`tool-plugin` or `pure-plugin`), as manifests
    /// and `plugin info` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginWorld::ToolPlugin => "tool-plugin",
            PluginWorld::PurePlugin => "pure-plugin",
        }
    }
}

/// One file of a plugin, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// The file's name, beside the manifest.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its blake3, as lowercase hex.
    pub blake3: String,
}

impl FileSum {
    /// The record of `file` holding `contents`: its size and blake3.
    pub fn of(file: String, contents: &[u8]) -> Self {
        Self { file, bytes: contents.len() as u64, blake3: blake3::hash(contents).to_hex().to_string() }
    }

    /// Whether `contents` are what this records.
    pub fn matches(&self, contents: &[u8]) -> bool {
        contents.len() as u64 == self.bytes && blake3::hash(contents).to_hex().as_str() == self.blake3
    }

    /// Reads this file from `dir` as untrusted input (at most `cap` bytes)
    /// and checks it against the recorded size and blake3; a mismatch is
    /// [`PluginError::Checksum`], naming the file and both digests.
    pub fn read_checked(&self, dir: &Path, cap: u64) -> Result<Vec<u8>, PluginError> {
        let bytes = read_untrusted(&dir.join(&self.file), cap)?;
        if !self.matches(&bytes) {
            return Err(PluginError::Checksum {
                file: self.file.clone(),
                want: self.blake3.clone(),
                got: blake3::hash(&bytes).to_hex().to_string(),
            });
        }
        Ok(bytes)
    }
}

/// `NAME.plugin.json`: what a plugin is, and the checksum of each of its
/// files. Written last, so a plugin exists only once its files are in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format; must be 1.
    pub format: u32,
    /// The plugin's name: its files' stem and its MCP tool name.
    pub name: String,
    /// The MCP tool's description.
    pub description: String,
    /// JSON Schema of the tool's arguments (`context.input`).
    pub input_schema: Value,
    /// The language of the source (TypeScript is stripped before compiling).
    pub language: Language,
    /// The world the component was built on (whether it may call tools).
    pub world: PluginWorld,
    /// The component (`NAME.wasm`).
    pub wasm: FileSum,
    /// Its policy (`NAME.policy.toml`).
    pub policy: FileSum,
    /// The script it was built from (`NAME.js` or `NAME.ts`).
    pub source: FileSum,
    /// The memory-mcp version that built it.
    pub built_by: String,
    /// The principal whose `save_plugin` saved it; only that principal (or
    /// the operator, `local`) may replace or remove it. Absent for plugins
    /// the operator installed, which only the operator may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_by: Option<String>,
}

impl Manifest {
    /// The manifest as the pretty JSON file holds it, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
