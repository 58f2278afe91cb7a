//! One JSON POST over `wasi:http`, following up to three redirects. Every
//! hop is a new outgoing request, so the host checks each destination; the
//! credentials header is dropped when a redirect leaves the origin. Errors
//! carry the status, never the answer's body.

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
use wasip2::io::streams::StreamError;

use super::{Endpoint, Failure, excerpt};

/// The largest answer read (a batch of 2,048 vectors of 3,072 numbers as
/// JSON is about 130 MB; providers are asked for less).
const MAX_RESPONSE_BYTES: usize = 256 << 20;
const MAX_REDIRECTS: usize = 3;

/// One POST: where it goes, what it carries and how long it may take.
pub struct Request<'a> {
    /// The provider's base URL, as the operator configured it.
    pub endpoint: &'a Endpoint,
    /// Appended to the endpoint's base path.
    pub path: &'a str,
    /// Sent only to the endpoint's own origin.
    pub authorization: Option<String>,
    /// The JSON body, already serialized.
    pub body: &'a [u8],
    /// The limit for each hop: connecting, and the first and every later byte.
    pub timeout: Duration,
}

/// POSTs `req.body` as JSON and returns the 2xx answer's body.
pub fn post_json(req: &Request<'_>) -> Result<Vec<u8>, Failure> {
    let mut target = req.endpoint.clone();
    let mut path = format!("{}{}", req.endpoint.path, req.path);
    for _ in 0..=MAX_REDIRECTS {
        let same_origin = target.authority == req.endpoint.authority && target.https == req.endpoint.https;
        let auth = if same_origin { req.authorization.as_deref() } else { None };
        let (status, location, body) = send(&target, &path, auth, req.body, req.timeout)?;
        match status {
            200..=299 => return Ok(body),
            301 | 302 | 303 | 307 | 308 => {
                let location =
                    location.ok_or_else(|| Failure::BadResponse(format!("HTTP {status} without a Location")))?;
                (target, path) = target.redirect(&location)?;
            }
            // The status is the error; the body is for the operator's log
            // (stderr) only, never for whoever called the embedder.
            429 | 500..=599 => {
                eprintln!("HTTP {status} from {}: {}", target.authority, excerpt(&body, 300));
                return Err(Failure::Unavailable(format!("HTTP {status}")));
            }
            _ => {
                eprintln!("HTTP {status} from {}: {}", target.authority, excerpt(&body, 300));
                return Err(Failure::BadResponse(format!("HTTP {status}")));
            }
        }
    }
    Err(Failure::BadResponse(format!("more than {MAX_REDIRECTS} redirects")))
}

fn send(
    to: &Endpoint,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Option<String>, Vec<u8>), Failure> {
    let internal = |what: &str| Failure::Unavailable(format!("building the request failed: {what}"));
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("accept".into(), b"application/json".to_vec()),
        // Sized, not chunked: some servers and proxies refuse chunked bodies.
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    if let Some(a) = authorization {
        headers.push(("authorization".into(), a.as_bytes().to_vec()));
    }
    let fields = Fields::from_list(&headers).map_err(|e| internal(&format!("{e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request.set_method(&Method::Post).map_err(|()| internal("method"))?;
    request.set_scheme(Some(if to.https { &Scheme::Https } else { &Scheme::Http })).map_err(|()| internal("scheme"))?;
    request.set_authority(Some(&to.authority)).map_err(|()| internal("authority"))?;
    request.set_path_with_query(Some(path)).map_err(|()| internal("path"))?;
    let outgoing = request.body().map_err(|()| internal("body"))?;
    let options = RequestOptions::new();
    let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // The host may refuse an option; its own defaults then apply.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| failure(e, to))?;
    let sent = {
        let stream = outgoing.write().map_err(|()| internal("body stream"))?;
        body.chunks(4096).try_for_each(|chunk| stream.blocking_write_and_flush(chunk))
    };
    if let Err(e) = sent {
        // The host may have refused the request (a denied destination):
        // its answer says why better than the closed stream does.
        pending.subscribe().block();
        if let Some(Ok(Err(code))) = pending.get() {
            return Err(failure(code, to));
        }
        return Err(match e {
            StreamError::LastOperationFailed(e) => Failure::Unavailable(format!("sending: {}", e.to_debug_string())),
            StreamError::Closed => Failure::Unavailable("the connection closed while sending".into()),
        });
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| failure(e, to))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(failure(e, to)),
        Some(Err(())) | None => return Err(Failure::Unavailable("no response".into())),
    };
    let status = response.status();
    let location = response
        .headers()
        .entries()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned());
    let incoming = response.consume().map_err(|()| Failure::BadResponse("no body".into()))?;
    let mut buf = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| Failure::BadResponse("no body stream".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() > MAX_RESPONSE_BYTES {
                        return Err(Failure::TooLarge(format!("the answer exceeds {} MiB", MAX_RESPONSE_BYTES >> 20)));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(match wasip2::http::types::http_error_code(&e) {
                        Some(code) => failure(code, to),
                        None => Failure::Unavailable(format!("reading the answer: {}", e.to_debug_string())),
                    });
                }
            }
        }
    }
    Ok((status, location, buf))
}

fn failure(e: ErrorCode, to: &Endpoint) -> Failure {
    match e {
        ErrorCode::HttpRequestDenied => Failure::Denied(format!(
            "the host does not grant this embedder {}://{}",
            if to.https { "https" } else { "http" },
            to.authority
        )),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => Failure::Timeout,
        other => Failure::Unavailable(format!("{}: {other:?}", to.authority)),
    }
}
