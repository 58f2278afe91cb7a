//! The embedding configuration: which provider, model and endpoint, and
//! the call limits. Persisted beside the episodes, so it survives restart.
//! The API key itself is never stored: only the name of the environment
//! variable it is read from. Which origins and variables are allowed at all
//! is the operator's choice ([`super::providers`]); these settings are
//! checked against it when chosen and again at every start.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default cosine similarity a semantic match must reach.
pub const DEFAULT_THRESHOLD: f32 = 0.7;

/// Which kind of embedder the settings choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Hashed word and character n-grams computed in a component: no
    /// network, no weights, deterministic.
    #[default]
    Local,
    /// sentence-transformers all-MiniLM-L6-v2 run with candle in a
    /// component that sees only its model directory (read-only): no
    /// network. The default once the model is installed.
    #[serde(rename = "local-minilm")]
    LocalMinilm,
    /// An Ollama server (`POST /api/embed`).
    Ollama,
    /// An OpenAI-compatible server (`POST /v1/embeddings`).
    Openai,
}

impl ProviderKind {
    /// Every provider, in declaration order.
    pub const ALL: [ProviderKind; 4] = [ProviderKind::Local, ProviderKind::LocalMinilm, ProviderKind::Ollama, ProviderKind::Openai];

    /// The provider's name, as settings and health reports write it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::LocalMinilm => "local-minilm",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Openai => "openai",
        }
    }

    /// Whether it reaches a server over the network (Ollama, OpenAI).
    pub fn is_remote(self) -> bool {
        !matches!(self, ProviderKind::Local | ProviderKind::LocalMinilm)
    }

    /// How this provider's calls are metered: the model embedder by its
    /// calls' wall-clock deadline (epoch interruption; fuel's count of
    /// every instruction cost it about 10% of its batch speed, measured:
    /// see the README's MiniLM figures), every other embedder by fuel as
    /// well. All run under a memory limit, without network unless remote.
    pub fn metering(self) -> crate::wasm::Metering {
        match self {
            ProviderKind::LocalMinilm => crate::wasm::Metering::Deadline,
            _ => crate::wasm::Metering::Fuel,
        }
    }
}

/// The persisted configuration (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// Format version; must be 1.
    pub version: u32,
    /// Which embedder.
    pub provider: ProviderKind,
    /// The provider's default when absent.
    pub model: Option<String>,
    /// Remote providers only.
    pub base_url: Option<String>,
    /// The environment variable holding the API key (never the key).
    pub api_key_env: Option<String>,
    /// Requested dimensions, where the provider can choose.
    pub dimensions: Option<u32>,
    /// The cosine similarity a semantic match must reach, in 0..1.
    pub similarity_threshold: f32,
    /// Texts per embedder call.
    pub batch_size: u32,
    /// Per HTTP attempt.
    pub timeout_ms: u32,
    /// Retries of a failed HTTP attempt (remote providers).
    pub max_retries: u32,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            version: 1,
            provider: ProviderKind::Local,
            model: None,
            base_url: None,
            api_key_env: None,
            dimensions: None,
            similarity_threshold: DEFAULT_THRESHOLD,
            batch_size: 256,
            timeout_ms: 10_000,
            max_retries: 2,
        }
    }
}

/// Bounds the settings must keep.
pub const BATCH_SIZE: std::ops::RangeInclusive<u32> = 1..=2048;
/// `timeout_ms`'s bounds.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 100..=120_000;
/// `max_retries`'s bounds.
pub const MAX_RETRIES: std::ops::RangeInclusive<u32> = 0..=10;
/// The most dimensions any embedder may produce.
pub const DIMENSIONS: std::ops::RangeInclusive<u32> = 1..=16_384;

impl EmbeddingSettings {
    /// Checks the settings on their own (the provider itself is asked
    /// separately).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.similarity_threshold) {
            return Err(format!("similarity_threshold must be within 0..1, not {}", self.similarity_threshold));
        }
        for (name, v, r) in [
            ("batch_size", self.batch_size, &BATCH_SIZE),
            ("timeout_ms", self.timeout_ms, &TIMEOUT_MS),
            ("max_retries", self.max_retries, &MAX_RETRIES),
            ("dimensions", self.dimensions.unwrap_or(*DIMENSIONS.start()), &DIMENSIONS),
        ] {
            if !r.contains(&v) {
                return Err(format!("{name} must be within {}..={}, not {v}", r.start(), r.end()));
            }
        }
        match self.provider {
            ProviderKind::Local | ProviderKind::LocalMinilm => {
                if self.base_url.is_some() || self.api_key_env.is_some() {
                    return Err(format!("the {} provider takes no base_url or api_key_env", self.provider.name()));
                }
            }
            ProviderKind::Ollama => {}
            ProviderKind::Openai => {
                if self.base_url.is_none() {
                    return Err("the openai provider needs a base_url (e.g. https://api.openai.com)".into());
                }
            }
        }
        if let Some(url) = &self.base_url {
            crate::wasm::Origin::of_url(url).map_err(|e| format!("base_url: {e}"))?;
        }
        if let Some(var) = &self.api_key_env {
            let ok = !var.is_empty() && var.len() <= 128 && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err("api_key_env must be an environment variable name (A-Z, 0-9, _)".into());
            }
        }
        if let Some(m) = &self.model
            && (m.is_empty() || m.len() > 256)
        {
            return Err("model must be 1..=256 characters".into());
        }
        Ok(())
    }

    /// The base URL the provider will use: the configured one, or Ollama's
    /// default.
    pub fn effective_base_url(&self) -> Option<String> {
        match self.provider {
            ProviderKind::Ollama => Some(self.base_url.clone().unwrap_or_else(|| "http://127.0.0.1:11434".into())),
            _ => self.base_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(EmbeddingSettings::default().validate().is_ok());
        let bad = EmbeddingSettings { similarity_threshold: 1.5, ..Default::default() };
        assert!(bad.validate().is_err());
        let bad = EmbeddingSettings { provider: ProviderKind::Openai, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("base_url"));
        let bad = EmbeddingSettings {
            provider: ProviderKind::Ollama,
            api_key_env: Some("X; rm -rf".into()),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let ok = EmbeddingSettings { provider: ProviderKind::Ollama, ..Default::default() };
        assert_eq!(ok.effective_base_url().as_deref(), Some("http://127.0.0.1:11434"));
        let json = r#"{"version":1,"provider":"local","model":null,"base_url":null,"api_key_env":null,"dimensions":null,"similarity_threshold":0.7,"batch_size":256,"timeout_ms":10000,"max_retries":2,"extra":1}"#;
        assert!(serde_json::from_str::<EmbeddingSettings>(json).is_err());
    }
}
