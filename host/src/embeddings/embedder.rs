//! One embedding provider as a component: a typed `InstancePre` built
//! once, a fresh `Store` per call with fuel, memory and wall-clock limits
//! (the model embedder: one resident instance, each call under its
//! wall-clock deadline and the memory limit, in the deadline-metered
//! engine [`super::settings::ProviderKind::metering`] names),
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
use wasmtime::component::Instance;
use wasmtime::{Engine, Store};

use super::settings::{EmbeddingSettings, ProviderKind};
use crate::wasm::{ArtifactCache, LoadReport};
use crate::wasm::{HttpGrant, Origin};
use crate::wasm::CappedPipe;
use crate::wasm::GuestError;
use crate::wasm::{Budget, Grants, GuestOptions, GuestState, Resident, Runner, Stop, linker};
use crate::world::embedder::{self, EmbedError, EmbedderConfig};

/// CPU budget of one call (the local embedder needs about 10⁸ for 4,096
/// texts).
const FUEL: u64 = 20_000_000_000;
/// Linear memory of one call (a remote answer is read whole).
const MEMORY_BYTES: u64 = 512 << 20;
/// Linear memory of the model embedder's instance: the weights (87 MiB),
/// the file buffer they are read from while loading, and a batch's
/// activations (32 texts × 256 tokens: 12 heads × 256² attention scores).
const MODEL_MEMORY_BYTES: u64 = 1 << 30;
/// CPU budget of one model call (a batch of 32 texts of 256 tokens, or the
/// first call's load of the weights) when its engine is fuel-metered; in
/// the deadline-metered engine the server uses for it, the call's
/// wall-clock deadline ([`Embedder::budget`]) is its CPU limit.
const MODEL_FUEL: u64 = 2_000_000_000_000;
/// Where the model directory appears inside the component.
const MODEL_GUEST_DIR: &str = "/model";
const STDERR_BYTES: usize = 2048;
/// Longest error summary passed on to callers.
const SUMMARY_CHARS: usize = 200;

/// Why an embedder could not be used or a call failed. Messages never
/// contain the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedFailure {
    /// The settings or the provider's declaration cannot work (what is wrong).
    #[error("invalid embedding configuration: {0}")]
    Config(String),
    /// The provider could not be reached or refused the call; retried.
    #[error("the embedding provider is unavailable: {0}")]
    Unavailable(String),
    /// The embedder tried something its grants do not allow (which).
    #[error("denied by policy: {0}")]
    Denied(String),
    /// The provider did not answer within the timeout (in ms); retried.
    #[error("the embedding provider did not answer within {0} ms")]
    Timeout(u64),
    /// The provider's answer is malformed (wrong shape, count or dimensions).
    #[error("the embedding provider answered badly: {0}")]
    BadResponse(String),
    /// A text, batch or answer is over its bound (which).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The embedder component failed (a trap); retried.
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
    /// The space of `model` from `provider` at `dims` dimensions: the first
    /// 8 bytes of their blake3, so the same triple always names the same space.
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
    /// The provider's name (`local`, `local-minilm`, or a declared one).
    pub provider: String,
    /// The model's name.
    pub model: String,
    /// The length of its vectors.
    pub dimensions: u32,
    /// The most texts one call may embed.
    pub max_batch: u32,
}

/// The model embedder's one instance, kept between calls so the weights
/// are read and parsed once (see [`Embedder::call`]).
struct Model {
    instance: Resident<()>,
    stderr: CappedPipe,
}

/// One embedder component, loaded and checked against its provider (its
/// model info and space), with the settings it was made for; its calls run
/// sandboxed under the embedding limits.
pub struct Embedder {
    /// The settings it was made for.
    pub settings: EmbeddingSettings,
    /// What its provider reported.
    pub info: ModelInfo,
    /// The space its vectors belong to.
    pub space: Space,
    runner: Runner<(), embedder::GuestIndices>,
    origin: Option<Origin>,
    secret: Option<String>,
    /// The model directory preopened (read-only) for the model embedder.
    model_dir: Option<std::path::PathBuf>,
    /// The model embedder's instance, when one is alive.
    resident: tokio::sync::Mutex<Option<Model>>,
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
        ProviderKind::LocalMinilm => crate::components::EMBEDDER_MINILM,
        ProviderKind::Ollama => crate::components::EMBEDDER_OLLAMA,
        ProviderKind::Openai => crate::components::EMBEDDER_OPENAI,
    }
}

/// The name a provider's component is cached under.
fn component_name(p: ProviderKind) -> String {
    format!("embedder-{}", p.name())
}

/// Compiles every provider's component into `cache` ahead of a server's
/// start (`memory-mcp warm`): each under the name, and in an engine of the
/// metering ([`ProviderKind::metering`]), that [`Embedder::load`] uses in
/// the server, so each artifact's cache key (the component's hash and the
/// engine's compatibility hash) is the one the server looks up.
pub async fn precompile(cache: &ArtifactCache) -> anyhow::Result<Vec<LoadReport>> {
    use anyhow::Context as _;
    let mut engines: Vec<(crate::wasm::Metering, Engine)> = Vec::new();
    let mut reports = Vec::with_capacity(ProviderKind::ALL.len());
    for kind in ProviderKind::ALL {
        let metering = kind.metering();
        let engine = match engines.iter().find(|(m, _)| *m == metering) {
            Some((_, e)) => e.clone(),
            None => {
                let e = crate::wasm::build_engine(metering)?;
                engines.push((metering, e.clone()));
                e
            }
        };
        let name = component_name(kind);
        let (_, report) = cache.load(&engine, &name, component_bytes(kind), None).await.with_context(|| format!("compiling {name}"))?;
        reports.push(report);
    }
    Ok(reports)
}

impl Embedder {
    /// Compiles (or loads from the cache) the provider's component, links
    /// it under its grants, and asks it for its model info.
    /// The model provider reads its weights from under `data_dir`
    /// (`models/<model>/`), after checking them against their pinned
    /// checksums.
    pub async fn load(engine: &Engine, cache: &ArtifactCache, settings: EmbeddingSettings, data_dir: &std::path::Path) -> Result<Self, EmbedFailure> {
        let name = component_name(settings.provider);
        let bytes = component_bytes(settings.provider);
        Self::load_component(engine, cache, settings, data_dir, &name, bytes).await
    }

    /// [`Embedder::load`] with another component in the provider's place,
    /// linked under exactly the provider's grants (the tests show with it
    /// what the model embedder's grant lets a component see).
    pub async fn load_component(
        engine: &Engine,
        cache: &ArtifactCache,
        settings: EmbeddingSettings,
        data_dir: &std::path::Path,
        name: &str,
        bytes: &[u8],
    ) -> Result<Self, EmbedFailure> {
        settings.validate().map_err(EmbedFailure::Config)?;
        let model_dir = match settings.provider {
            ProviderKind::LocalMinilm => {
                let spec = crate::models::MINILM;
                let dir = spec.path(data_dir);
                let check = dir.clone();
                tokio::task::spawn_blocking(move || spec.verify(&check))
                    .await
                    .map_err(|e| EmbedFailure::Trap(format!("verifying the model: {e}")))?
                    .map_err(|e| EmbedFailure::Unavailable(e.to_string()))?;
                Some(dir)
            }
            _ => None,
        };
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
        let (component, _) = cache
            .load(engine, name, bytes, None)
            .await
            .map_err(|e| internal("compiling", &format!("{e:#}")))?;
        let grants = Grants { http: settings.provider.is_remote(), filesystem: model_dir.is_some() };
        let linker = linker::linker(engine, &component, grants, &[]).map_err(|e| internal("linking", &e))?;
        let runner = Runner::new(&linker, &component, |pre| {
            embedder::GuestIndices::new(pre).map_err(|e| wasmtime::format_err!("exports: {e}"))
        })
        .map_err(|e| internal("pre-instantiating", &e))?;
        let mut e = Self {
            info: ModelInfo { provider: String::new(), model: String::new(), dimensions: 0, max_batch: 0 },
            space: Space(0),
            settings,
            runner,
            origin,
            secret,
            model_dir,
            resident: tokio::sync::Mutex::new(None),
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

    /// One call. The model embedder keeps one instance alive across calls
    /// (loading 87 MiB of weights per call would dominate every query);
    /// each call still gets fresh fuel and its own deadline, and any
    /// failure discards the instance, so the next call starts clean. Every
    /// other provider gets a fresh instance per call.
    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(
            &mut Store<GuestState>,
            &wasmtime::component::Instance,
            &embedder::GuestIndices,
        ) -> wasmtime::Result<Result<T, EmbedError>>,
    ) -> Result<T, EmbedFailure> {
        match &self.model_dir {
            Some(dir) => self.call_resident(dir, f).await,
            None => self.call_fresh(f).await,
        }
    }

    async fn call_resident<T>(
        &self,
        dir: &std::path::Path,
        f: impl AsyncFnOnce(
            &mut Store<GuestState>,
            &Instance,
            &embedder::GuestIndices,
        ) -> wasmtime::Result<Result<T, EmbedError>>,
    ) -> Result<T, EmbedFailure> {
        let budget = self.budget();
        let ms = budget.as_millis() as u64;
        let fuel = Budget { fuel: Some(MODEL_FUEL), copy_bytes: None };
        let mut slot = self.resident.lock().await;
        let deadline = Instant::now() + budget;
        if slot.is_none() {
            let stderr = CappedPipe::new(STDERR_BYTES);
            let options = GuestOptions::new(MODEL_MEMORY_BYTES, deadline)
                .stderr(stderr.clone())
                .preopen_read_only(dir, MODEL_GUEST_DIR);
            let state = GuestState::new(options, ()).map_err(|e| match e {
                GuestError::Preopen { dir, message } => {
                    EmbedFailure::Unavailable(format!("opening the model directory {}: {message}", dir.display()))
                }
            })?;
            let instance = self.runner.resident(state, fuel).await.map_err(|stop| self.classify(stop, ms))?;
            *slot = Some(Model { instance, stderr });
        }
        let Some(model) = slot.as_mut() else {
            return Err(EmbedFailure::Trap("no instance".into()));
        };
        let indices = self.runner.indices();
        let result = match model.instance.call(deadline, fuel, async |store, instance| f(store, instance, indices).await).await {
            Err(stop) => Err(self.classify(stop, ms)),
            Ok(Err(e)) => Err(self.reported(e)),
            Ok(Ok(t)) => Ok(t),
        };
        if result.is_err() {
            let said = model.stderr.text();
            if !said.trim().is_empty() {
                tracing::warn!(provider = self.settings.provider.name(), detail = %said.trim(), "the embedder reported");
            }
            // A trapped or timed-out instance is never reused.
            *slot = None;
        }
        result
    }

    async fn call_fresh<T>(
        &self,
        f: impl AsyncFnOnce(
            &mut Store<GuestState>,
            &Instance,
            &embedder::GuestIndices,
        ) -> wasmtime::Result<Result<T, EmbedError>>,
    ) -> Result<T, EmbedFailure> {
        let budget = self.budget();
        let stderr = CappedPipe::new(STDERR_BYTES);
        let grant = match &self.origin {
            Some(o) => HttpGrant::to(o.clone()),
            None => HttpGrant::none(),
        };
        let options = GuestOptions::new(MEMORY_BYTES, Instant::now() + budget).stderr(stderr.clone()).http(grant);
        let ms = budget.as_millis() as u64;
        let result = match GuestState::new(options, ()) {
            Err(e) => Err(EmbedFailure::Trap(e.to_string())),
            Ok(state) => {
                let fuel = Budget { fuel: Some(FUEL), copy_bytes: None };
                match self.runner.call(state, fuel, None, f).await.result {
                    Err(stop) => Err(self.classify(stop, ms)),
                    Ok(Err(e)) => Err(self.reported(e)),
                    Ok(Ok(t)) => Ok(t),
                }
            }
        };
        if result.is_err() {
            let said = stderr.text();
            if !said.trim().is_empty() {
                tracing::warn!(provider = self.settings.provider.name(), detail = %self.clean(said.trim()), "the embedder reported");
            }
        }
        result.map_err(|f| self.scrub(f))
    }

    fn classify(&self, stop: Stop, ms: u64) -> EmbedFailure {
        match stop {
            Stop::OutOfFuel => EmbedFailure::Trap(format!("ran out of fuel ({} units)", if self.model_dir.is_some() { MODEL_FUEL } else { FUEL })),
            Stop::Deadline => EmbedFailure::Timeout(ms),
            Stop::Memory => EmbedFailure::Trap(format!(
                "exceeded its memory limit of {} MiB",
                if self.model_dir.is_some() { MODEL_MEMORY_BYTES } else { MEMORY_BYTES } >> 20
            )),
            Stop::Denied(denied) => EmbedFailure::Denied(denied.to_string()),
            // What trapped only: the component's stderr is logged by the
            // caller, not passed on.
            other => EmbedFailure::Trap(summary(&other.what())),
        }
    }

    fn reported(&self, e: EmbedError) -> EmbedFailure {
        match e {
            EmbedError::InvalidConfig(s) => EmbedFailure::Config(summary(&s)),
            EmbedError::Unavailable(s) => EmbedFailure::Unavailable(summary(&s)),
            // The first request goes to the granted origin, so a denial is
            // a redirect elsewhere: where to is the provider's to choose
            // (a channel into sandboxed code, which may see this error), so
            // it is logged (by the grant), never passed on.
            EmbedError::Denied(_) => EmbedFailure::Denied(
                "the provider redirected to an origin it is not granted (the server's log names it)".into(),
            ),
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

    /// `text` without the provider's origin (its authority, and its host
    /// alone): an error leaving this module may reach sandboxed code (as
    /// `query_semantic_memory`'s), which learns no operator setting; the
    /// log keeps the origin.
    fn without_origin(&self, text: String) -> String {
        let Some(o) = &self.origin else { return text };
        let host = o.authority.rsplit_once(':').map_or(o.authority.as_str(), |(h, _)| h);
        let mut out = text;
        for needle in [o.authority.as_str(), host] {
            if needle.len() >= 3 && out.contains(needle) {
                out = out.replace(needle, "[provider origin]");
            }
        }
        out
    }

    /// Removes the API key and the provider's origin from anything about
    /// to leave this module.
    fn scrub(&self, f: EmbedFailure) -> EmbedFailure {
        let clean = |s: String| self.without_origin(self.clean(&s));
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
