//! The embedding providers the operator declared in the config file
//! (`[embeddings.providers.<name>]`), and the built-in `local` one.
//!
//! The operator chooses every destination and every secret: a declared
//! provider fixes its kind, origin and the environment variable its API key
//! is read from. An MCP client's `configure_embeddings` picks a provider by
//! name (and a model among those declared for it); it can never name an
//! origin or a variable. Persisted settings are admitted at start-up only
//! when a declaration still covers them ([`Providers::admit`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::settings::{EmbeddingSettings, ProviderKind};

/// The name of the built-in hashed provider, always available.
pub const LOCAL: &str = "local";
/// The name of the built-in model provider (all-MiniLM-L6-v2), usable once
/// the model is installed.
pub const LOCAL_MINILM: &str = "local-minilm";

/// Ollama's address when a declaration gives none.
pub const OLLAMA_DEFAULT_URL: &str = "http://127.0.0.1:11434";

/// Most models one declaration may list.
const MAX_MODELS: usize = 64;

/// Why a declaration or a choice was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A `[embeddings.providers.<name>]` table is unusable.
    #[error("[embeddings.providers.{name}]: {reason}")]
    Declaration {
        /// The provider's name.
        name: String,
        /// What is wrong with its table.
        reason: String,
    },
    /// The name is neither `local` nor declared.
    #[error("no embedding provider named `{name}` is declared (available: {available}); the operator declares providers under [embeddings.providers.<name>] in the config file")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The providers declared, comma-separated.
        available: String,
    },
    /// The model is not one the operator declared for this provider.
    #[error("model `{model}` is not declared for provider `{name}` (declared: {declared})")]
    Model {
        /// The provider's name.
        name: String,
        /// The model asked for.
        model: String,
        /// The models declared for it, comma-separated.
        declared: String,
    },
}

/// `[embeddings]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEmbeddings {
    /// Remote providers an MCP client may choose, by name.
    #[serde(default)]
    pub providers: BTreeMap<String, DeclaredProvider>,
}

/// One `[embeddings.providers.<name>]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredProvider {
    /// `ollama` or `openai` (any OpenAI-compatible server).
    pub kind: ProviderKind,
    /// The provider's base URL; the embedder may reach its origin and no
    /// other. Ollama's default (`http://127.0.0.1:11434`) when absent;
    /// required for `openai`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the API key (the key itself is
    /// never in the file, stored or shown).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The model used when a client names none; the component's default
    /// when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Further models a client may choose.
    #[serde(default)]
    pub models: Vec<String>,
    /// Requested dimensions, where the provider can choose.
    #[serde(default)]
    pub dimensions: Option<u32>,
}

impl DeclaredProvider {
    fn base_url(&self) -> Option<String> {
        match (&self.base_url, self.kind) {
            (Some(u), _) => Some(normalise(u)),
            (None, ProviderKind::Ollama) => Some(OLLAMA_DEFAULT_URL.to_string()),
            (None, _) => None,
        }
    }

    /// Every model a client may name (the default first).
    fn declared_models(&self) -> impl Iterator<Item = &String> {
        self.model.iter().chain(self.models.iter())
    }

    fn allows_model(&self, model: &str) -> bool {
        self.declared_models().any(|m| m == model)
    }

    /// The settings this declaration gives with `model` (checked by the
    /// caller) and the defaults for everything a client may tune.
    fn settings(&self, model: Option<String>) -> EmbeddingSettings {
        EmbeddingSettings {
            provider: self.kind,
            model: model.or_else(|| self.model.clone()),
            base_url: self.base_url(),
            api_key_env: self.api_key_env.clone(),
            dimensions: self.dimensions,
            ..EmbeddingSettings::default()
        }
    }
}

/// Removes every occurrence of `hidden` (URLs, and each URL's origin, and
/// variable names) from the strings in `value`, longest first.
pub fn redact(value: &mut serde_json::Value, hidden: &[String]) {
    let mut needles: Vec<String> = Vec::new();
    for h in hidden.iter().filter(|h| h.len() >= 3) {
        let url = normalise(h);
        if let Some(o) = origin(&url) {
            needles.push(o);
        }
        needles.push(url);
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    redact_in(value, &needles);
}

fn redact_in(value: &mut serde_json::Value, needles: &[String]) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            for n in needles {
                if s.contains(n.as_str()) {
                    *s = s.replace(n.as_str(), "[operator setting]");
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| redact_in(v, needles)),
        Value::Object(o) => o.values_mut().for_each(|v| redact_in(v, needles)),
        _ => {}
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let start = url.find("://")? + 3;
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    Some(url[..end].to_string())
}

/// A base URL without trailing slashes, so `http://h/` and `http://h`
/// compare equal.
fn normalise(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// Provider names follow the config's rule for names: 1–64 of
/// `a-z 0-9 _ -`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The checked declarations: what `configure_embeddings` may choose from
/// and what persisted settings must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Providers {
    declared: BTreeMap<String, DeclaredProvider>,
}

impl Providers {
    /// What only the operator may see: every declared base URL and API
    /// key variable.
    pub fn operator_strings(&self) -> Vec<String> {
        self.declared.values().flat_map(|p| p.base_url().into_iter().chain(p.api_key_env.clone())).collect()
    }

    /// Checks every declaration: its name, kind, origin, key variable and
    /// models.
    pub fn new(declared: BTreeMap<String, DeclaredProvider>) -> Result<Self, ProviderError> {
        for (name, p) in &declared {
            let bad = |reason: String| ProviderError::Declaration { name: name.clone(), reason };
            if !valid_name(name) {
                return Err(bad("a provider name has 1 to 64 of a-z, 0-9, _ and -".into()));
            }
            if name == LOCAL || name == LOCAL_MINILM {
                return Err(bad(format!("`{name}` is a built-in provider and cannot be redeclared")));
            }
            if !p.kind.is_remote() {
                return Err(bad("kind must be `ollama` or `openai`".into()));
            }
            if p.models.len() > MAX_MODELS {
                return Err(bad(format!("at most {MAX_MODELS} models")));
            }
            for model in p.declared_models() {
                p.settings(Some(model.clone())).validate().map_err(bad)?;
            }
            p.settings(None).validate().map_err(bad)?;
        }
        Ok(Self { declared })
    }

    /// `local`, `local-minilm` and every declared name.
    pub fn names(&self) -> Vec<String> {
        [LOCAL.to_string(), LOCAL_MINILM.to_string()].into_iter().chain(self.declared.keys().cloned()).collect()
    }

    /// The settings for provider `name` with `model` (the declared default
    /// when absent), before a client's tuning of thresholds, batches,
    /// timeouts and dimensions.
    pub fn choose(&self, name: &str, model: Option<String>) -> Result<EmbeddingSettings, ProviderError> {
        if name == LOCAL {
            return Ok(EmbeddingSettings { model, ..EmbeddingSettings::default() });
        }
        if name == LOCAL_MINILM {
            return Ok(EmbeddingSettings { provider: ProviderKind::LocalMinilm, model, ..EmbeddingSettings::default() });
        }
        let Some(p) = self.declared.get(name) else {
            return Err(ProviderError::Unknown { name: name.chars().take(64).collect(), available: self.names().join(", ") });
        };
        if let Some(m) = &model
            && !p.allows_model(m)
        {
            let declared: Vec<&str> = p.declared_models().map(String::as_str).collect();
            return Err(ProviderError::Model {
                name: name.to_string(),
                model: m.chars().take(64).collect(),
                declared: if declared.is_empty() { "none: the provider's default only".into() } else { declared.join(", ") },
            });
        }
        Ok(p.settings(model))
    }

    /// The declared provider that covers `s`: the same kind, origin and key
    /// variable, and a declared model (or none). `Ok(None)` for the local
    /// provider; `Err` says why nothing covers it.
    pub fn admit(&self, s: &EmbeddingSettings) -> Result<Option<String>, String> {
        s.validate()?;
        if !s.provider.is_remote() {
            return Ok(None);
        }
        let url = s.effective_base_url().map(|u| normalise(&u));
        let covering = self.declared.iter().find(|(_, p)| {
            p.kind == s.provider
                && p.base_url() == url
                && p.api_key_env == s.api_key_env
                && s.model.as_deref().is_none_or(|m| p.allows_model(m))
        });
        match covering {
            Some((name, _)) => Ok(Some(name.clone())),
            None => Err(format!(
                "no [embeddings.providers.*] entry in the config file declares a {} provider at {} with api_key_env {}{}",
                s.provider.name(),
                url.as_deref().unwrap_or("(none)"),
                s.api_key_env.as_deref().unwrap_or("(none)"),
                s.model.as_deref().map(|m| format!(" and model {m}")).unwrap_or_default(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(toml_text: &str) -> Result<Providers, ProviderError> {
        let file: FileEmbeddings = toml::from_str(toml_text).unwrap();
        Providers::new(file.providers)
    }

    const TWO: &str = r#"
        [providers.work]
        kind = "openai"
        base_url = "https://api.example.com/"
        api_key_env = "WORK_KEY"
        model = "small"
        models = ["large"]
        [providers.home]
        kind = "ollama"
    "#;

    #[test]
    fn redaction_removes_urls_their_origins_and_variables_everywhere() {
        let mut v = serde_json::json!({
            "a": "HTTP 403: only http://10.0.0.5:8080 is granted",
            "b": ["http://10.0.0.5:8080/v1/", {"c": "key in WORK_KEY"}],
            "n": 3,
        });
        redact(&mut v, &["http://10.0.0.5:8080/v1/".into(), "WORK_KEY".into()]);
        let text = v.to_string();
        assert!(!text.contains("10.0.0.5") && !text.contains("WORK_KEY"), "{text}");
        assert_eq!(v["a"], "HTTP 403: only [operator setting] is granted");
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn a_client_chooses_only_among_declarations() {
        let p = declared(TWO).unwrap();
        assert_eq!(p.names(), vec!["local", "local-minilm", "home", "work"]);
        assert_eq!(p.choose(LOCAL_MINILM, None).unwrap().provider, ProviderKind::LocalMinilm);
        let s = p.choose("work", None).unwrap();
        assert_eq!(
            (s.provider, s.base_url.as_deref(), s.api_key_env.as_deref(), s.model.as_deref()),
            (ProviderKind::Openai, Some("https://api.example.com"), Some("WORK_KEY"), Some("small"))
        );
        assert_eq!(p.choose("work", Some("large".into())).unwrap().model.as_deref(), Some("large"));
        assert!(matches!(p.choose("work", Some("other".into())), Err(ProviderError::Model { .. })));
        assert!(matches!(p.choose("openai", None), Err(ProviderError::Unknown { .. })));
        assert_eq!(p.choose("home", None).unwrap().base_url.as_deref(), Some(OLLAMA_DEFAULT_URL));
        assert!(p.choose("home", Some("x".into())).is_err());
        assert_eq!(p.choose(LOCAL, None).unwrap(), EmbeddingSettings::default());
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            "[providers.local]\nkind = \"ollama\"",
            "[providers.local-minilm]\nkind = \"ollama\"",
            "[providers.x]\nkind = \"local\"",
            "[providers.x]\nkind = \"openai\"",
            "[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://h\"",
            "[providers.x]\nkind = \"ollama\"\napi_key_env = \"A B\"",
            "[providers.Bad]\nkind = \"ollama\"",
            "[providers.x]\nkind = \"ollama\"\nmodels = [\"\"]",
        ] {
            assert!(declared(bad).is_err(), "{bad}");
        }
        assert!(toml::from_str::<FileEmbeddings>("[providers.x]\nkind = \"ollama\"\nurl = \"http://h\"").is_err());
    }

    #[test]
    fn persisted_settings_are_admitted_only_when_declared() {
        let p = declared(TWO).unwrap();
        assert_eq!(p.admit(&EmbeddingSettings::default()), Ok(None));
        let chosen = p.choose("work", Some("large".into())).unwrap();
        assert_eq!(p.admit(&chosen), Ok(Some("work".into())));
        let home = EmbeddingSettings { provider: ProviderKind::Ollama, ..Default::default() };
        assert_eq!(p.admit(&home), Ok(Some("home".into())));
        for refused in [
            EmbeddingSettings { base_url: Some("http://evil.example:9".into()), ..chosen.clone() },
            EmbeddingSettings { api_key_env: Some("OTHER".into()), ..chosen.clone() },
            EmbeddingSettings { api_key_env: None, ..chosen.clone() },
            EmbeddingSettings { model: Some("undeclared".into()), ..chosen.clone() },
            EmbeddingSettings { provider: ProviderKind::Ollama, ..chosen.clone() },
            EmbeddingSettings { api_key_env: Some("HOME".into()), ..home.clone() },
        ] {
            assert!(p.admit(&refused).is_err(), "{refused:?}");
        }
        assert!(Providers::default().admit(&home).is_err());
    }
}
