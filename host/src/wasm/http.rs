//! Outgoing HTTP as a capability: a component granted `wasi:http` may
//! reach exactly one origin (scheme, host and port), the one its policy
//! names. Every request, redirects included since each hop is a new
//! request, passes [`HttpGrant::send_request`]; any other destination gets
//! `HTTP-request-denied` and is logged by origin (never by path, query or
//! header, which may carry secrets).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::uri::Scheme;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One origin: `https` or not, and `host:port` (lower case, port explicit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Whether the scheme is `https`.
    pub https: bool,
    /// `host:port`, lower case, port explicit.
    pub authority: String,
}

impl Origin {
    /// The origin of `url` (`http[s]://host[:port]/...`), or why not.
    pub fn of_url(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        Self::of_uri(&uri).ok_or_else(|| format!("`{url}` needs an http:// or https:// scheme and a host"))
    }

    fn of_uri(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Self { https, authority: format!("{host}:{port}") })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", if self.https { "https" } else { "http" }, self.authority)
    }
}

/// The hooks a store's `wasi:http` runs through: one allowed origin, or
/// none (every request denied).
#[derive(Debug, Clone, Default)]
pub struct HttpGrant {
    allowed: Option<Origin>,
    /// Requests refused so far, shared with whoever holds a clone.
    denied: Arc<AtomicU64>,
}

impl HttpGrant {
    /// Requests to `origin` only.
    pub fn to(origin: Origin) -> Self {
        Self { allowed: Some(origin), denied: Arc::default() }
    }

    /// No request at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// How many requests this grant refused.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    fn allows(&self, uri: &http::Uri) -> Result<(), String> {
        let target = Origin::of_uri(uri);
        match (&self.allowed, &target) {
            (Some(a), Some(t)) if a == t => Ok(()),
            _ => Err(target.map_or_else(|| "a request with no usable origin".to_string(), |t| t.to_string())),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if let Err(target) = self.allows(request.uri()) {
            self.denied.fetch_add(1, Ordering::Relaxed);
            let allowed = self.allowed.as_ref().map_or_else(|| "nothing".to_string(), ToString::to_string);
            tracing::warn!(%target, %allowed, "outgoing HTTP request denied by policy");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_origin_only() {
        let g = HttpGrant::to(Origin::of_url("http://127.0.0.1:11434").unwrap_or_else(|e| panic!("{e}")));
        let ok: http::Uri = "http://127.0.0.1:11434/api/embed".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(g.allows(&ok).is_ok());
        for bad in ["http://127.0.0.1:11435/api/embed", "https://127.0.0.1:11434/", "http://localhost:11434/", "/relative"] {
            let uri: http::Uri = bad.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(g.allows(&uri).is_err(), "{bad} allowed");
        }
        let none = HttpGrant::none();
        assert!(none.allows(&ok).is_err());
        let implicit = Origin::of_url("https://API.example.com/v1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(implicit.authority, "api.example.com:443");
    }
}
