//! One embedding provider as a component: a typed `InstancePre` built
//! once, a fresh `Store` per call with fuel, memory and wall-clock limits,
//! and `wasi:http` linked only for remote providers, to the one origin of
//! their base URL. The API key is read from the configured environment
//! variable, handed to this component in its config, and scrubbed from
//! anything the component says.
//!
//! What a call's error says is a summary (a status code, a category), never
//! the provider's answer: errors flow back to callers, sandboxed code among
//! them (through the query tools and `health_check`). The component's own
//! stderr, where it may quote the answer, goes to the operator's log only.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use super::settings::{EmbeddingSettings, ProviderKind};
use crate::sandbox::artifacts::ArtifactCache;
use crate::sandbox::capabilities::{self, Grants};
use crate::sandbox::http::{HttpGrant, Origin};
use crate::sandbox::output::CappedPipe;
use crate::sandbox::store::{Stop, StoreData, metered, why_stopped};
use crate::world::embedder::{self, EmbedError, EmbedderConfig};

/// CPU budget of one call (the local embedder needs about 10⁸ for 4,096
/// texts).
const FUEL: u64 = 20_000_000_000;
/// Linear memory of one call (a remote answer is read whole).
const MEMORY_BYTES: u64 = 512 << 20;
const STDERR_BYTES: usize = 2048;
/// Longest error summary passed on to callers.
const SUMMARY_CHARS: usize = 200;

/// Why an embedder could not be used or a call failed. Messages never
/// contain the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedFailure {
    #[error("invalid embedding configuration: {0}")]
    Config(String),
    #[error("the embedding provider is unavailable: {0}")]
    Unavailable(String),
    #[error("denied by policy: {0}")]
    Denied(String),
    #[error("the embedding provider did not answer within {0} ms")]
    Timeout(u64),
    #[error("the embedding provider answered badly: {0}")]
    BadResponse(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("the embedder component failed: {0}")]
    Trap(String),
}

impl EmbedFailure {
    /// Whether a later attempt may succeed (the worker retries these).
    pub fn transient(&self) -> bool {
        matches!(self, EmbedFailure::Unavailable(_) | EmbedFailure::Timeout(_) | EmbedFailure::Trap(_))
    }
}

/// The 8-byte id of an embedding space: provider, model and dimensions.
/// Vectors of different spaces never share an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Space(pub u64);

impl Space {
    pub fn of(provider: &str, model: &str, dims: u32) -> Self {
        let h = blake3::hash(format!("{provider}\0{model}\0{dims}").as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        Space(u64::from_be_bytes(b))
    }
}

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What the provider reported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
pub struct ModelInfo {
    pub provider: String,
    pub model: String,
    pub dimensions: u32,
    pub max_batch: u32,
}

pub struct Embedder {
    pub settings: EmbeddingSettings,
    pub info: ModelInfo,
    pub space: Space,
    engine: Engine,
    pre: InstancePre<StoreData>,
    indices: embedder::GuestIndices,
    origin: Option<Origin>,
    secret: Option<String>,
}

/// What the component reported, cut to what a caller may see: `HTTP 503`
/// rather than `HTTP 503: <the provider's body>`; nothing from a quote on
/// (quoted text comes from outside: an answer, a header); at most
/// [`SUMMARY_CHARS`] characters, on one line.
fn summary(reported: &str) -> String {
    if let Some(rest) = reported.strip_prefix("HTTP ") {
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if code.len() == 3 {
            return format!("HTTP {code}");
        }
    }
    let cut = reported.find(['"', '`', '\'', '\n', '{']).unwrap_or(reported.len());
    let kept = reported[..cut].trim_end_matches([' ', ':', '(']).trim();
    let mut out: String = kept.chars().take(SUMMARY_CHARS).collect();
    if kept.chars().count() > SUMMARY_CHARS {
        out.push('…');
    }
    out
}

fn component_bytes(p: ProviderKind) -> &'static [u8] {
    match p {
        ProviderKind::Local => crate::components::EMBEDDER_LOCAL,
        ProviderKind::Ollama => crate::components::EMBEDDER_OLLAMA,
        ProviderKind::Openai => crate::components::EMBEDDER_OPENAI,
    }
}

impl Embedder {
    /// Compiles (or loads from the cache) the provider's component, links
    /// it under its grants, and asks it for its model info.
    pub async fn load(engine: &Engine, cache: &ArtifactCache, settings: EmbeddingSettings) -> Result<Self, EmbedFailure> {
        settings.validate().map_err(EmbedFailure::Config)?;
        let secret = match &settings.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => return Err(EmbedFailure::Config(format!("the environment variable {var} (api_key_env) is not set"))),
            },
            None => None,
        };
        let origin = match settings.effective_base_url() {
            Some(url) if settings.provider.is_remote() => Some(Origin::of_url(&url).map_err(EmbedFailure::Config)?),
            _ => None,
        };
        let internal = |what: &str, e: &dyn std::fmt::Display| EmbedFailure::Trap(format!("{what}: {e}"));
        let name = format!("embedder-{}", settings.provider.name());
        let (component, _) = cache
            .load(engine, &name, component_bytes(settings.provider), None)
            .await
            .map_err(|e| internal("compiling", &format!("{e:#}")))?;
        let grants = Grants { http: settings.provider.is_remote(), ..Grants::NONE };
        let linker = capabilities::linker(engine, &component, grants).map_err(|e| internal("linking", &e))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| internal("pre-instantiating", &e))?;
        let indices = embedder::GuestIndices::new(&pre).map_err(|e| internal("exports", &e))?;
        let mut e = Self {
            info: ModelInfo { provider: String::new(), model: String::new(), dimensions: 0, max_batch: 0 },
            space: Space(0),
            settings,
            engine: engine.clone(),
            pre,
            indices,
            origin,
            secret,
        };
        let config = e.config();
        let info = e
            .call(async |store, instance, idx| idx.load(&mut *store, instance)?.call_info(&mut *store, &config).await)
            .await?;
        if info.dimensions == 0 || info.dimensions > 16_384 || info.max_batch == 0 {
            return Err(EmbedFailure::BadResponse(format!(
                "the provider reports {} dimensions and batches of {}",
                info.dimensions, info.max_batch
            )));
        }
        e.space = Space::of(&info.provider, &info.model, info.dimensions);
        e.info = ModelInfo { provider: info.provider, model: info.model, dimensions: info.dimensions, max_batch: info.max_batch };
        Ok(e)
    }

    fn config(&self) -> EmbedderConfig {
        EmbedderConfig {
            model: self.settings.model.clone(),
            base_url: self.settings.effective_base_url(),
            api_key: self.secret.clone(),
            dimensions: self.settings.dimensions,
            timeout_ms: self.settings.timeout_ms,
            max_retries: self.settings.max_retries,
        }
    }

    /// Embeds `texts` in batches of at most `batch_size`; every vector has
    /// this embedder's dimensions.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        let batch = self.settings.batch_size.min(self.info.max_batch).max(1) as usize;
        let config = self.config();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch) {
            let vectors = self
                .call(async |store, instance, idx| idx.load(&mut *store, instance)?.call_embed(&mut *store, &config, chunk).await)
                .await?;
            let dims = self.info.dimensions as usize;
            if vectors.len() != chunk.len() || vectors.iter().any(|v| v.len() != dims) {
                return Err(EmbedFailure::BadResponse(format!(
                    "expected {} vectors of {dims} dimensions (the model's); the provider changed model or dimensions",
                    chunk.len()
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    /// The wall-clock budget of one call: every attempt's timeout plus the
    /// backoff between them, and a margin.
    fn budget(&self) -> Duration {
        let s = &self.settings;
        let attempts = u64::from(s.max_retries) + 1;
        // The component's own backoff between attempts (one definition).
        let backoff: u64 = (0..s.max_retries).map(|n| backoff::delay(n).as_millis() as u64).sum();
        // Connect, first byte and the body each get the timeout.
        Duration::from_millis(3 * u64::from(s.timeout_ms) * attempts + backoff + 2_000)
    }

    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(
            &mut Store<StoreData>,
            &wasmtime::component::Instance,
            &embedder::GuestIndices,
        ) -> wasmtime::Result<Result<T, EmbedError>>,
    ) -> Result<T, EmbedFailure> {
        let budget = self.budget();
        let deadline = Instant::now() + budget;
        let stderr = CappedPipe::new(STDERR_BYTES);
        let grant = match &self.origin {
            Some(o) => HttpGrant::to(o.clone()),
            None => HttpGrant::none(),
        };
        let data = StoreData::for_embedder(stderr.clone(), MEMORY_BYTES, grant, deadline);
        let mut store = metered(&self.engine, data, FUEL);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            f(&mut store, &instance, &self.indices).await
        };
        let ms = budget.as_millis() as u64;
        let result = match tokio::time::timeout(budget, run).await {
            Err(_) => Err(EmbedFailure::Timeout(ms)),
            Ok(Err(e)) => Err(self.classify(&e, &store, &stderr, ms)),
            Ok(Ok(Err(e))) => Err(self.reported(e)),
            Ok(Ok(Ok(t))) => Ok(t),
        };
        if result.is_err() {
            let said = stderr.text();
            if !said.trim().is_empty() {
                tracing::warn!(provider = self.settings.provider.name(), detail = %self.clean(said.trim()), "the embedder reported");
            }
        }
        result.map_err(|f| self.scrub(f))
    }

    fn classify(&self, e: &wasmtime::Error, store: &Store<StoreData>, stderr: &CappedPipe, ms: u64) -> EmbedFailure {
        match why_stopped(e, store, stderr) {
            Stop::OutOfFuel => EmbedFailure::Trap(format!("ran out of fuel ({FUEL} units)")),
            Stop::Timeout => EmbedFailure::Timeout(ms),
            Stop::Memory => EmbedFailure::Trap(format!("exceeded its memory limit of {} MiB", MEMORY_BYTES >> 20)),
            Stop::Denied(line) => EmbedFailure::Denied(line),
            // The component's stderr (appended after `; stderr:`) is logged
            // by the caller, not passed on.
            Stop::Trap(what) => EmbedFailure::Trap(summary(what.split("; stderr:").next().unwrap_or_default())),
        }
    }

    fn reported(&self, e: EmbedError) -> EmbedFailure {
        match e {
            EmbedError::InvalidConfig(s) => EmbedFailure::Config(summary(&s)),
            EmbedError::Unavailable(s) => EmbedFailure::Unavailable(summary(&s)),
            EmbedError::Denied(s) => EmbedFailure::Denied(match &self.origin {
                Some(o) => format!("{}; only {o} is granted", summary(&s)),
                None => summary(&s),
            }),
            EmbedError::Timeout => EmbedFailure::Timeout(u64::from(self.settings.timeout_ms)),
            EmbedError::BadResponse(s) => EmbedFailure::BadResponse(summary(&s)),
            EmbedError::TooLarge(s) => EmbedFailure::TooLarge(summary(&s)),
        }
    }

    /// `text` without the API key.
    fn clean(&self, text: &str) -> String {
        match self.secret.as_deref().filter(|s| s.len() >= 4) {
            Some(secret) => text.replace(secret, "[redacted]"),
            None => text.to_string(),
        }
    }

    /// Removes the API key from anything about to leave this module.
    fn scrub(&self, f: EmbedFailure) -> EmbedFailure {
        let clean = |s: String| self.clean(&s);
        match f {
            EmbedFailure::Config(s) => EmbedFailure::Config(clean(s)),
            EmbedFailure::Unavailable(s) => EmbedFailure::Unavailable(clean(s)),
            EmbedFailure::Denied(s) => EmbedFailure::Denied(clean(s)),
            EmbedFailure::BadResponse(s) => EmbedFailure::BadResponse(clean(s)),
            EmbedFailure::TooLarge(s) => EmbedFailure::TooLarge(clean(s)),
            EmbedFailure::Trap(s) => EmbedFailure::Trap(clean(s)),
            t @ EmbedFailure::Timeout(_) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_keep_the_status_and_drop_the_answer() {
        assert_eq!(summary("HTTP 401: {\"error\":\"Incorrect API key provided: sk-123\"}"), "HTTP 401");
        assert_eq!(summary("HTTP 503"), "HTTP 503");
        assert_eq!(summary("not JSON: invalid type: string \"secret page\", expected map"), "not JSON: invalid type: string");
        assert_eq!(summary("redirect to an unusable location `gopher://x`"), "redirect to an unusable location");
        assert_eq!(summary("3 vectors for 4 texts"), "3 vectors for 4 texts");
        assert!(summary(&"x".repeat(5000)).chars().count() <= 201);
    }
}
