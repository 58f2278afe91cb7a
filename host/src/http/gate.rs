//! What every HTTP request passes before rmcp's Streamable HTTP service
//! sees it, and what it holds while it runs: the path, the bearer token
//! (401 with `WWW-Authenticate`), the session's owner, the body-size limit
//! (413), the session limit (503), the principal's concurrent-request
//! limit (429), and the drain at shutdown (503). rmcp itself checks `Host`
//! and `Origin` against the allow-lists (403).
//!
//! Each request is logged once at INFO on stderr: HTTP method, JSON-RPC
//! method, status, time and principal; never a token.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Either, Full, Limited, combinators::BoxBody};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::auth::{Principals, bearer};
use super::sessions::BoundedSessions;
use crate::mcp::Server;
use crate::principal::{HangUp, Principal};

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
const SESSION_HEADER: &str = "mcp-session-id";
/// The 2026-07-28 request whose answer is a long-lived stream of
/// notifications, like a session's GET stream.
const LISTEN: &str = "subscriptions/listen";

type HttpBody = BoxBody<Bytes, Infallible>;

/// The gate's settings.
pub struct GateConfig {
    /// `None`: no authentication (loopback only; every request is `local`).
    pub principals: Option<Principals>,
    /// Largest request body in bytes; a larger one is refused with 413.
    pub max_body_bytes: usize,
    /// Most requests one principal may have running at once; more get 429.
    pub max_concurrent_per_principal: usize,
    /// How long a request body may take to arrive once its head has.
    pub body_timeout: Duration,
    /// Most streams (GET streams, `subscriptions/listen`) one principal may
    /// have open at once; a session has at most one GET stream.
    pub max_streams_per_principal: usize,
}

/// The front of the HTTP transport: authenticates each request, bounds its body, its principal's requests and streams, and passes it to rmcp's Streamable HTTP service.
pub struct Gate {
    config: GateConfig,
    service: StreamableHttpService<Server, BoundedSessions>,
    sessions: Arc<BoundedSessions>,
    /// Each principal's concurrent-request slots.
    slots: Mutex<HashMap<Principal, Arc<Semaphore>>>,
    in_flight: Arc<InFlight>,
    draining: AtomicBool,
    /// Each principal's stream slots.
    streams: Mutex<HashMap<Principal, Arc<Semaphore>>>,
    /// Sessions with a GET stream open.
    getting: Arc<Mutex<HashSet<String>>>,
    /// Cancelled at shutdown: open streams end at once.
    closing: CancellationToken,
}

/// Held by an open stream (a GET stream or `subscriptions/listen`): its
/// principal's stream slot, and its session's one GET stream.
struct StreamHold {
    _slot: OwnedSemaphorePermit,
    session: Option<(Arc<Mutex<HashSet<String>>>, String)>,
}

impl Drop for StreamHold {
    fn drop(&mut self) {
        if let Some((getting, id)) = &self.session {
            crate::sync::lock(getting).remove(id);
        }
    }
}

/// Requests whose responses are not finished yet (long-lived GET streams
/// aside), for the drain at shutdown.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by a request until its response body ends or is dropped, and,
/// for a request that runs work, until its handler has finished too (a
/// client that hangs up does not free its slot while its call runs).
struct Held {
    in_flight: Option<Arc<InFlight>>,
    _slot: Option<OwnedSemaphorePermit>,
}

/// A request's [`Held`], in its extensions, which rmcp hands to the
/// handler: the handler's copy is dropped when the handler is done.
#[derive(Clone)]
struct WorkHold(#[allow(dead_code)] Arc<Held>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(f) = &self.in_flight
            && f.count.fetch_sub(1, Ordering::AcqRel) == 1
        {
            f.idle.notify_waiters();
        }
    }
}

impl Gate {
    /// A gate in front of `service`, whose sessions are `sessions`; it admits requests until [`Gate::drain`].
    pub fn new(
        config: GateConfig,
        service: StreamableHttpService<Server, BoundedSessions>,
        sessions: Arc<BoundedSessions>,
    ) -> Self {
        Self {
            config,
            service,
            sessions,
            slots: Mutex::default(),
            in_flight: Arc::default(),
            draining: AtomicBool::new(false),
            streams: Mutex::default(),
            getting: Arc::default(),
            closing: CancellationToken::new(),
        }
    }

    /// Whether requests must carry a bearer token (a token file or `MEMORY_MCP_TOKEN` was given).
    pub fn has_auth(&self) -> bool {
        self.config.principals.is_some()
    }

    /// Stops admitting requests, then waits (at most `timeout`) for those
    /// in flight to finish. Returns how many were still running.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
        // Streams are not requests in flight: they end now.
        self.closing.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.in_flight.idle.notified();
            let n = self.in_flight.count.load(Ordering::Acquire);
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight.count.load(Ordering::Acquire);
            }
        }
    }

    /// Answers one HTTP request: checks the path, bearer token, origin, body
    /// and concurrency bounds, then hands it to the MCP service; logs one
    /// line per request to stderr.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<HttpBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let mut log = LogLine { method: method.clone(), rpc: None, principal: None };
        let response = self.admit(req, &mut log).await;
        tracing::info!(
            target: "memory_mcp::http",
            method = %log.method,
            rpc = log.rpc.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
            principal = log.principal.as_ref().map(|p| p.name()).unwrap_or("-"),
            "http request"
        );
        response
    }

    async fn admit(&self, req: Request<hyper::body::Incoming>, log: &mut LogLine) -> Response<HttpBody> {
        if req.uri().path() != MCP_PATH {
            return plain(StatusCode::NOT_FOUND, format!("Not Found: MCP is served at {MCP_PATH}"));
        }
        if self.draining.load(Ordering::Acquire) {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the server is shutting down".into());
        }
        // rmcp matches `Origin` against the allow-list, but reads a port it
        // cannot parse as no port (`http://localhost:1.evil.com` would pass
        // `http://localhost:*`): an origin that is not `scheme://host[:port]`
        // is refused here first.
        if let Some(origin) = req.headers().get(header::ORIGIN)
            && !origin.to_str().is_ok_and(origin_is_well_formed)
        {
            return plain(StatusCode::FORBIDDEN, "Forbidden: the Origin header is not a valid origin".into());
        }
        let principal = match self.authenticate(req.headers()) {
            Ok(p) => p,
            Err(response) => return *response,
        };
        log.principal = Some(principal.clone());
        let session = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(id) = &session
            && self.sessions.owner(id).is_some_and(|owner| owner != principal)
        {
            // As for an unknown session: another principal's is not revealed.
            return plain(StatusCode::NOT_FOUND, "Not Found: Session not found".into());
        }
        let (mut parts, body) = req.into_parts();
        let mut slot = None;
        let mut in_flight = None;
        let mut runs_work = false;
        // A GET stream holds a stream slot, not a request slot.
        let mut stream = None;
        if parts.method == Method::GET {
            match self.open_stream(&principal, session.as_deref(), None) {
                Ok(hold) => stream = Some(hold),
                Err(response) => return *response,
            }
        }
        let body = if parts.method == Method::POST {
            // The slot is taken before the body is read, so the bytes a
            // principal makes the server hold are bounded by its own slots
            // (--max-concurrent-requests × the body limit); the id is not
            // known yet, so a refusal here carries none.
            match self.slot(&principal) {
                Some(permit) => slot = Some(permit),
                None => return self.over_concurrency(&principal, None),
            }
            let read = Limited::new(body, self.config.max_body_bytes).collect();
            let read = match tokio::time::timeout(self.config.body_timeout, read).await {
                Ok(read) => read,
                Err(_) => {
                    return plain(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("Request Timeout: the body did not arrive within {} s", self.config.body_timeout.as_secs()),
                    );
                }
            };
            let bytes = match read {
                Ok(b) => b.to_bytes(),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("Payload Too Large: the body is over {} bytes (--max-frame-bytes)", self.config.max_body_bytes),
                    );
                }
                Err(e) => return plain(StatusCode::BAD_REQUEST, format!("Bad Request: reading the body: {e}")),
            };
            let peek = match Peek::of(&bytes, is_json(&parts.headers)) {
                Ok(peek) => peek,
                Err(response) => return *response,
            };
            log.rpc = peek.method.clone();
            if session.is_none()
                && peek.method.as_deref() == Some("initialize")
                && let Some(refused) = self.sessions.refusal(&principal).await
            {
                return rpc_error(StatusCode::SERVICE_UNAVAILABLE, peek.id, refused.to_string());
            }
            if peek.method.as_deref() == Some(LISTEN) {
                // A stream of notifications, like a GET stream: it holds a
                // stream slot instead of a request slot, is not waited for
                // at shutdown, and ends then.
                slot = None;
                match self.open_stream(&principal, None, Some(peek.id.clone())) {
                    Ok(hold) => stream = Some(hold),
                    Err(response) => return *response,
                }
            } else {
                // The handshake aside, a request runs work: the slot and the
                // in-flight mark go with it to its handler (see `WorkHold`).
                runs_work = peek.method.as_deref().is_some_and(|m| m != "initialize");
                self.in_flight.count.fetch_add(1, Ordering::AcqRel);
                in_flight = Some(self.in_flight.clone());
            }
            Either::Left(Full::new(bytes))
        } else {
            Either::Right(body)
        };
        if parts.method == Method::DELETE
            && let Some(id) = &session
            && !self.sessions.contains(id).await
        {
            return plain(StatusCode::NOT_FOUND, "Not Found: Session not found".into());
        }
        let held = Arc::new(Held { in_flight, _slot: slot });
        let hang_up = CancellationToken::new();
        if runs_work {
            parts.extensions.insert(WorkHold(held.clone()));
            parts.extensions.insert(HangUp(hang_up.clone()));
        }
        parts.extensions.insert(principal.clone());
        let response = principal.scope(self.service.handle(Request::from_parts(parts, body))).await;
        let (parts, body) = response.into_parts();
        let closing = stream.is_some().then(|| Box::pin(self.closing.clone().cancelled_owned()));
        Response::from_parts(parts, BoxBody::new(Guarded { inner: body, _held: held, hang_up, _stream: stream, closing }))
    }

    /// A stream slot of `principal` (and `session`'s one GET stream), or
    /// the answer to send: 429 with every stream slot taken, 409 when the
    /// session has a GET stream open already.
    fn open_stream(
        &self,
        principal: &Principal,
        session: Option<&str>,
        id: Option<Value>,
    ) -> Result<StreamHold, Box<Response<HttpBody>>> {
        let semaphore = crate::sync::lock(&self.streams)
            .entry(principal.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_streams_per_principal)))
            .clone();
        let Ok(slot) = semaphore.try_acquire_owned() else {
            return Err(Box::new(rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                id.unwrap_or(Value::Null),
                format!(
                    "principal `{principal}` has {} streams open, its limit (--max-streams-per-principal); close one first",
                    self.config.max_streams_per_principal
                ),
            )));
        };
        let session = match session {
            Some(sid) => {
                if !crate::sync::lock(&self.getting).insert(sid.to_string()) {
                    return Err(Box::new(plain(
                        StatusCode::CONFLICT,
                        "Conflict: this session already has a GET stream open (one per session); close it first".into(),
                    )));
                }
                Some((self.getting.clone(), sid.to_string()))
            }
            None => None,
        };
        Ok(StreamHold { _slot: slot, session })
    }

    /// The request's principal, or the 401 to send.
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, Box<Response<HttpBody>>> {
        let Some(principals) = &self.config.principals else {
            return Ok(Principal::local());
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Box::new(unauthorized(None)));
        };
        match bearer(value).and_then(|t| principals.authenticate(t)) {
            Some(p) => Ok(p),
            None => Err(Box::new(unauthorized(Some("invalid_token")))),
        }
    }

    /// The 429 for a principal with every slot taken (`id` when known).
    fn over_concurrency(&self, principal: &Principal, id: Option<Value>) -> Response<HttpBody> {
        rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            id.unwrap_or(Value::Null),
            format!(
                "principal `{principal}` has {} requests running, its limit (--max-concurrent-requests); retry when one ends",
                self.config.max_concurrent_per_principal
            ),
        )
    }

    fn slot(&self, principal: &Principal) -> Option<OwnedSemaphorePermit> {
        let semaphore = crate::sync::lock(&self.slots)
            .entry(principal.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_concurrent_per_principal)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }
}

struct LogLine {
    method: Method,
    rpc: Option<String>,
    principal: Option<Principal>,
}

/// What the gate reads of a JSON-RPC body (rmcp parses it in full).
struct Peek {
    method: Option<String>,
    id: Value,
}

impl Peek {
    /// The body's method and id; a body that is not one JSON-RPC message
    /// gets its JSON-RPC error here (-32700 for JSON that does not parse,
    /// -32600 for a batch or a message rmcp would not take), with the id
    /// when it can be read. Bodies of other content types go on to rmcp,
    /// which answers 415.
    fn of(bytes: &[u8], json: bool) -> Result<Self, Box<Response<HttpBody>>> {
        let v: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) if !json => return Ok(Self { method: None, id: Value::Null }),
            Err(e) => return Err(Box::new(invalid(Value::Null, -32700, format!("Parse error: the body is not JSON ({e})")))),
        };
        let id = v.get("id").filter(|id| id.is_string() || id.is_number()).cloned().unwrap_or(Value::Null);
        if json {
            if v.is_array() {
                return Err(Box::new(invalid(
                    Value::Null,
                    -32600,
                    "Invalid Request: JSON-RPC batches are not supported (send one message per request)".into(),
                )));
            }
            if let Err(e) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(bytes) {
                let what = if v.is_object() { e.to_string() } else { "the body is not a JSON object".into() };
                return Err(Box::new(invalid(id, -32600, format!("Invalid Request: not a JSON-RPC message ({what})"))));
            }
        }
        let method = v.get("method").and_then(Value::as_str).map(|m| m.chars().take(64).collect());
        Ok(Self { method, id })
    }
}

/// Whether the request says its body is JSON.
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `origin` is `null` or `scheme://host[:port]` with a numeric
/// port, as browsers send it.
fn origin_is_well_formed(origin: &str) -> bool {
    if origin == "null" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else { return false };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return false;
        }
        (addr, after)
    } else {
        let end = rest.find(':').unwrap_or(rest.len());
        let (host, after) = rest.split_at(end);
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)) {
            return false;
        }
        (host, after)
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok(),
    };
    scheme_ok && !host.is_empty() && port_ok
}

/// A JSON-RPC error for a request the server cannot take (HTTP 400).
fn invalid(id: Value, code: i64, message: String) -> Response<HttpBody> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn plain(status: StatusCode, text: String) -> Response<HttpBody> {
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn rpc_error(status: StatusCode, id: Value, message: String) -> Response<HttpBody> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn unauthorized(error: Option<&str>) -> Response<HttpBody> {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"memory-mcp\", error=\"{e}\""),
        None => "Bearer realm=\"memory-mcp\"".to_string(),
    };
    let text = match error {
        Some(_) => "Unauthorized: the bearer token is not valid",
        None => "Unauthorized: send Authorization: Bearer <token>",
    };
    let mut r = plain(StatusCode::UNAUTHORIZED, text.into());
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// A response body that holds the request's slot and in-flight mark until
/// it ends (or the client goes away and it is dropped).
struct Guarded {
    inner: HttpBody,
    _held: Arc<Held>,
    /// Cancelled when the body ends or is dropped: work still running for
    /// a client that is gone is stopped.
    hang_up: CancellationToken,
    /// A stream's hold, given back when the stream ends.
    _stream: Option<StreamHold>,
    /// For a stream: resolves at shutdown, which ends it.
    closing: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.hang_up.cancel();
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(closing) = self.closing.as_mut()
            && closing.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_origins_with_numeric_ports_pass() {
        for ok in ["http://localhost", "http://localhost:5173", "https://app.example.com:443", "http://[::1]:8080", "null"] {
            assert!(origin_is_well_formed(ok), "{ok}");
        }
        for bad in [
            "http://localhost:1.evil.com",
            "http://localhost:80x",
            "http://localhost:99999",
            "http://localhost:",
            "http://localhost/x",
            "http://user@localhost",
            "localhost:80",
            "http://",
            "http://[::1]x",
        ] {
            assert!(!origin_is_well_formed(bad), "{bad}");
        }
    }
}
