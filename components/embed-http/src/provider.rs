//! A remote provider is a request shape and an answer shape; the rest
//! (validation, retries, the contract's checks) is here, once.

use std::time::Duration;

use super::{Endpoint, Failure, check_batch};

/// The WIT `embedder-config`, as plain Rust.
pub struct Config {
    /// The model to ask for; the provider's default when absent or empty.
    pub model: Option<String>,
    /// The provider's base URL; the provider's default when absent.
    pub base_url: Option<String>,
    /// The credential, sent only to the base URL's own origin.
    pub api_key: Option<String>,
    /// The vector size to ask for, where the provider can shorten vectors.
    pub dimensions: Option<u32>,
    /// The limit for each request, in milliseconds; 0 is refused.
    pub timeout_ms: u32,
    /// How often a failed request is retried (with backoff).
    pub max_retries: u32,
}

/// What differs between remote providers: the request and answer shapes.
pub trait Provider {
    /// The provider's name in `model-info`.
    const NAME: &'static str;
    /// The base URL used when the configuration names none (`None`: one
    /// must be configured).
    const DEFAULT_BASE_URL: Option<&'static str>;
    /// The model used when the configuration names none.
    const DEFAULT_MODEL: &'static str;
    /// The most texts one request carries.
    const MAX_BATCH: u32;
    /// Appended to the base URL.
    fn path(endpoint: &Endpoint) -> &'static str;
    /// The request body for one batch of texts.
    fn body(model: &str, dimensions: Option<u32>, texts: &[String]) -> serde_json::Value;
    /// The vectors in input order.
    fn parse(answer: serde_json::Value) -> Result<Vec<Vec<f32>>, Failure>;
    /// The `authorization` header for a credential (a bearer token by
    /// default).
    fn authorization(api_key: Option<&str>) -> Option<String> {
        api_key.map(|k| format!("Bearer {k}"))
    }
}

/// `(model, dimensions, max-batch)`: one probe text embedded to learn the
/// dimensions.
pub fn info<P: Provider>(config: &Config) -> Result<(String, u32, u32), Failure> {
    let v = embed::<P>(config, &["dimension probe".to_string()])?;
    let dims = v.first().map_or(0, Vec::len);
    Ok((model::<P>(config), u32::try_from(dims).unwrap_or(u32::MAX), P::MAX_BATCH))
}

fn model<P: Provider>(config: &Config) -> String {
    config.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| P::DEFAULT_MODEL.to_string())
}

/// Embeds `texts` (at most `P::MAX_BATCH`) in one request, retried as
/// configured; the vectors come back in input order, checked.
pub fn embed<P: Provider>(config: &Config, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
    if texts.len() > P::MAX_BATCH as usize {
        return Err(Failure::TooLarge(format!("{} texts; at most {} per call", texts.len(), P::MAX_BATCH)));
    }
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let base = config
        .base_url
        .as_deref()
        .or(P::DEFAULT_BASE_URL)
        .ok_or_else(|| Failure::InvalidConfig(format!("the {} provider needs a base_url", P::NAME)))?;
    let endpoint = Endpoint::parse(base)?;
    if config.timeout_ms == 0 {
        return Err(Failure::InvalidConfig("timeout_ms must be positive".into()));
    }
    let body = serde_json::to_vec(&P::body(&model::<P>(config), config.dimensions, texts))
        .map_err(|e| Failure::InvalidConfig(e.to_string()))?;
    let request = super::Request {
        endpoint: &endpoint,
        path: P::path(&endpoint),
        authorization: P::authorization(config.api_key.as_deref()),
        body: &body,
        timeout: Duration::from_millis(u64::from(config.timeout_ms)),
    };
    let answer = super::with_retries(config.max_retries, sleep, || super::post_json(&request))?;
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|e| {
            // serde's message may quote the answer: only its position is kept.
            Failure::BadResponse(format!("not JSON ({:?} error at line {}, column {})", e.classify(), e.line(), e.column()))
        })?;
    check_batch(texts.len(), P::parse(answer)?)
}

fn sleep(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    wasip2::clocks::monotonic_clock::subscribe_duration(ns).block();
}
