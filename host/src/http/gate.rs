//! What every HTTP request passes before rmcp's Streamable HTTP service
//! sees it, and what it holds while it runs: the path, the bearer token
//! (401 with `WWW-Authenticate`), the session's owner, the body-size limit
//! (413), the session limit (503), the principal's concurrent-request
//! limit (429), and the drain at shutdown (503). rmcp itself checks `Host`
//! and `Origin` against the allow-lists (403).
//!
//! Each request is logged once at INFO on stderr: HTTP method, JSON-RPC
//! method, status, time and principal; never a token.

use std::collections::HashMap;
use std::convert::Infallible;
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

use super::auth::{Principals, bearer};
use super::sessions::BoundedSessions;
use crate::mcp::MemoryServer;
use crate::principal::Principal;

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
const SESSION_HEADER: &str = "mcp-session-id";
/// The first protocol version served without sessions.
const SESSIONLESS_VERSION: &str = "2026-07-28";

type HttpBody = BoxBody<Bytes, Infallible>;

/// The gate's settings.
pub struct GateConfig {
    /// `None`: no authentication (loopback only; every request is `local`).
    pub principals: Option<Principals>,
    pub max_body_bytes: usize,
    pub max_concurrent_per_principal: usize,
    /// How long a request body may take to arrive once its head has.
    pub body_timeout: Duration,
}

pub struct Gate {
    config: GateConfig,
    service: StreamableHttpService<MemoryServer, BoundedSessions>,
    sessions: Arc<BoundedSessions>,
    /// Each principal's concurrent-request slots.
    slots: Mutex<HashMap<Principal, Arc<Semaphore>>>,
    /// Which principal opened each session: no other may use it.
    owners: Mutex<HashMap<String, Principal>>,
    in_flight: Arc<InFlight>,
    draining: AtomicBool,
}

/// Requests whose responses are not finished yet (long-lived GET streams
/// aside), for the drain at shutdown.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by a request until its response body ends or is dropped.
struct Held {
    in_flight: Option<Arc<InFlight>>,
    _slot: Option<OwnedSemaphorePermit>,
}

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
    pub fn new(
        config: GateConfig,
        service: StreamableHttpService<MemoryServer, BoundedSessions>,
        sessions: Arc<BoundedSessions>,
    ) -> Self {
        Self {
            config,
            service,
            sessions,
            slots: Mutex::default(),
            owners: Mutex::default(),
            in_flight: Arc::default(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn has_auth(&self) -> bool {
        self.config.principals.is_some()
    }

    /// Stops admitting requests, then waits (at most `timeout`) for those
    /// in flight to finish. Returns how many were still running.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
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
        let principal = match self.authenticate(req.headers()) {
            Ok(p) => p,
            Err(response) => return *response,
        };
        log.principal = Some(principal.clone());
        let session = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(id) = &session {
            let owner = crate::sync::lock(&self.owners).get(id).cloned();
            if owner.is_some_and(|o| o != principal) {
                // As for an unknown session: another principal's is not revealed.
                return plain(StatusCode::NOT_FOUND, "Not Found: Session not found".into());
            }
        }
        let (mut parts, body) = req.into_parts();
        let mut held = Held { in_flight: None, _slot: None };
        let body = if parts.method == Method::POST {
            // The slot is taken before the body is read, so the bytes a
            // principal makes the server hold are bounded by its own slots
            // (--max-concurrent-requests × the body limit); the id is not
            // known yet, so a refusal here carries none.
            match self.slot(&principal) {
                Some(permit) => held._slot = Some(permit),
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
            let peek = Peek::of(&bytes);
            log.rpc = peek.method.clone();
            if session.is_none() && peek.opens_session() && self.sessions.count().await >= self.sessions.max() {
                return rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    peek.id,
                    format!(
                        "too many MCP sessions: {} are open, the limit (--max-sessions); end one with DELETE, or wait for an idle one to time out",
                        self.sessions.max()
                    ),
                );
            }
            self.in_flight.count.fetch_add(1, Ordering::AcqRel);
            held.in_flight = Some(self.in_flight.clone());
            Either::Left(Full::new(bytes))
        } else {
            Either::Right(body)
        };
        parts.extensions.insert(principal.clone());
        let is_delete = parts.method == Method::DELETE;
        let response = self.service.handle(Request::from_parts(parts, body)).await;
        if response.status().is_success() {
            if is_delete && let Some(id) = &session {
                crate::sync::lock(&self.owners).remove(id);
            } else if session.is_none()
                && let Some(id) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
            {
                self.own(id.to_owned(), principal).await;
            }
        }
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, BoxBody::new(Guarded { inner: body, _held: held }))
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

    /// Records a new session's owner, forgetting sessions that have ended.
    async fn own(&self, id: String, principal: Principal) {
        let known: Vec<String> = crate::sync::lock(&self.owners).keys().cloned().collect();
        let mut gone = Vec::new();
        for k in known {
            if !self.sessions.contains(&k).await {
                gone.push(k);
            }
        }
        let mut owners = crate::sync::lock(&self.owners);
        for k in gone {
            owners.remove(&k);
        }
        owners.insert(id, principal);
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
    protocol: Option<String>,
}

impl Peek {
    fn of(bytes: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let method = v.get("method").and_then(Value::as_str).map(|m| m.chars().take(64).collect());
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let protocol = v.pointer("/params/protocolVersion").and_then(Value::as_str).map(str::to_owned);
        Self { method, id, protocol }
    }

    /// An `initialize` of a protocol version with sessions.
    fn opens_session(&self) -> bool {
        self.method.as_deref() == Some("initialize")
            && self.protocol.as_deref().is_none_or(|v| v < SESSIONLESS_VERSION)
    }
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
    _held: Held,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
