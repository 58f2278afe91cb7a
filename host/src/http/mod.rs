//! MCP over Streamable HTTP: `memory-mcp serve --http ADDR`, at `/mcp`.
//!
//! The same [`Server`] the stdio transport serves (same tools,
//! policy and store) behind rmcp's Streamable HTTP service, with rmcp's
//! session manager bounded ([`sessions`]), and a [`gate`] in front that
//! authenticates bearer tokens ([`auth`]), names the request's
//! [`Principal`](crate::principal::Principal), bounds bodies and each
//! principal's concurrent requests, and logs one line per request. rmcp
//! checks `Host` and `Origin` against allow-lists (DNS-rebinding
//! protection). SIGTERM (or Ctrl-C) stops accepting, drains the requests in
//! flight, ends the sessions, and returns.

mod auth;
mod conn;
mod gate;
mod sessions;

pub use auth::{TOKEN_ENV, token_sha256_hex};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::mcp::Server;
use auth::Principals;
use gate::{Gate, GateConfig, MCP_PATH};
use sessions::BoundedSessions;

/// Origins always accepted: pages served from this machine.
const LOOPBACK_ORIGINS: &[&str] =
    &["http://localhost:*", "https://localhost:*", "http://127.0.0.1:*", "https://127.0.0.1:*", "http://[::1]:*", "https://[::1]:*"];

/// The largest HTTP/1 request head (request line and headers) read;
/// hyper answers 431 beyond it. Bodies are read in pieces and bounded by
/// the frame limit on their own.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `serve`'s options. Without `--http`, MCP is served on stdio.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// Serve MCP over Streamable HTTP at `http://ADDR/mcp` instead of
    /// stdio. ADDR is `IP:PORT`, or a port alone for loopback
    /// (127.0.0.1). A non-loopback address needs a token.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// TOML file of `[[principals]]` (`name`, `token_sha256`): one bearer
    /// token per member or agent. Without it, `MEMORY_MCP_TOKEN` names one
    /// principal; with neither, only loopback is served, unauthenticated.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub token_file: Option<PathBuf>,
    /// Another `Host` to accept (besides localhost, 127.0.0.1, ::1 and the
    /// bound address), e.g. the name a reverse proxy forwards. Repeatable.
    #[arg(long, value_name = "HOST", requires = "http")]
    pub allowed_host: Vec<String>,
    /// A browser `Origin` to accept besides loopback ones (`http://localhost:*`
    /// and the like), e.g. `https://app.example.com:443` (`:*` for any
    /// port). Repeatable. Requests with any other `Origin` get 403;
    /// requests without one (non-browser clients) pass.
    #[arg(long, value_name = "ORIGIN", requires = "http")]
    pub allowed_origin: Vec<String>,
    /// Most MCP sessions open at once (protocol versions before
    /// 2026-07-28, which have sessions).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_sessions: usize,
    /// Most MCP sessions one principal may have open at once, so that one
    /// cannot take them all. Default: --max-sessions with one principal,
    /// a quarter of it (at least 1) when the token file names several.
    #[arg(long, value_name = "N")]
    pub max_sessions_per_principal: Option<usize>,
    /// A session idle this long ends; a session with a request running or
    /// a stream open (a GET stream included) is not idle.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub session_idle_secs: u64,
    /// Most requests one principal may have running at once; more get 429.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_concurrent_requests: usize,
    /// Most streams one principal may have open at once (GET streams and
    /// 2026-07-28 `subscriptions/listen`); more get 429. A session has at
    /// most one GET stream (a second gets 409). Streams hold no request
    /// slot and end at once at shutdown.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_streams_per_principal: usize,
    /// At SIGTERM, how long requests in flight may take to finish.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub drain_secs: u64,
    /// Most TCP connections open at once, authenticated or not; beyond it
    /// the server stops accepting until one closes.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// A connection that has not sent a whole request head within this
    /// long is closed (slow or idle clients hold no descriptor for long).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub header_timeout_secs: u64,
    /// A connection with no request in flight this long is closed (HTTP/1
    /// keep-alive and HTTP/2 alike; an open stream is a request in flight).
    /// A connection must also start its first request (an HTTP/1 head or an
    /// HTTP/2 stream) within --header-timeout-secs.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub idle_connection_secs: u64,
    /// A request body that has not fully arrived this long after its head
    /// is refused with 408; it holds one of its principal's slots meanwhile.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub body_timeout_secs: u64,
}

/// Where and how to serve, checked.
#[derive(Debug)]
pub struct HttpOptions {
    /// The address to listen on (a bare port means 127.0.0.1).
    pub addr: SocketAddr,
    /// Who may connect, by bearer token; `None` only on a loopback address, served unauthenticated.
    pub principals: Option<Principals>,
    /// `Host` values accepted: localhost, 127.0.0.1, ::1, the bound address unless it is unspecified, and any `--allowed-host`.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted besides the loopback ones.
    pub allowed_origins: Vec<String>,
    /// Largest request body in bytes (the stdio frame limit).
    pub max_body_bytes: usize,
    /// Most MCP sessions open at once (at least 1).
    pub max_sessions: usize,
    /// Most sessions one principal may have open at once (at least 1).
    pub max_sessions_per_principal: usize,
    /// A session idle this long ends.
    pub session_idle: Duration,
    /// Most requests one principal may have running at once; more get 429.
    pub max_concurrent_per_principal: usize,
    /// Most streams one principal may have open at once; more get 429.
    pub max_streams_per_principal: usize,
    /// At shutdown, how long requests in flight may take to finish.
    pub drain: Duration,
    /// Most TCP connections open at once.
    pub max_connections: usize,
    /// A connection must send a whole request head within this long.
    pub header_timeout: Duration,
    /// A connection with no request in flight this long is closed.
    pub idle_connection: Duration,
    /// A request body must fully arrive within this long after its head, or gets 408.
    pub body_timeout: Duration,
}

impl HttpOptions {
    /// The options of `serve --http`, or `None` for stdio. `env_token` is
    /// `MEMORY_MCP_TOKEN`'s value; `max_body_bytes` the stdio frame limit.
    pub fn from_args(args: &ServeArgs, env_token: Option<String>, max_body_bytes: usize) -> Result<Option<Self>> {
        let Some(addr) = &args.http else { return Ok(None) };
        let addr = parse_addr(addr)?;
        let principals = match (&args.token_file, env_token.filter(|t| !t.is_empty())) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both --token-file and {} are set; use one (the token file names each principal)",
                auth::TOKEN_ENV
            ),
            (Some(file), None) => Some(Principals::from_file(file)?),
            (None, Some(token)) => Some(Principals::from_token(&token)?),
            (None, None) => None,
        };
        if principals.is_none() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve on {addr} without authentication: a non-loopback address is reachable by \
                 other machines. Set {} or --token-file, or bind a loopback address (127.0.0.1)",
                auth::TOKEN_ENV
            );
        }
        for (what, n) in [
            ("--max-sessions", args.max_sessions),
            ("--max-concurrent-requests", args.max_concurrent_requests),
            ("--max-connections", args.max_connections),
            ("--max-streams-per-principal", args.max_streams_per_principal),
        ] {
            anyhow::ensure!(n > 0, "{what} must be at least 1");
        }
        let several = principals.as_ref().is_some_and(|p| p.len() > 1);
        let max_sessions_per_principal = args
            .max_sessions_per_principal
            .unwrap_or(if several { (args.max_sessions / 4).max(1) } else { args.max_sessions });
        anyhow::ensure!(max_sessions_per_principal > 0, "--max-sessions-per-principal must be at least 1");
        anyhow::ensure!(args.session_idle_secs > 0, "--session-idle-secs must be at least 1");
        anyhow::ensure!(args.header_timeout_secs > 0, "--header-timeout-secs must be at least 1");
        anyhow::ensure!(args.idle_connection_secs > 0, "--idle-connection-secs must be at least 1");
        anyhow::ensure!(args.body_timeout_secs > 0, "--body-timeout-secs must be at least 1");
        let mut allowed_hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !addr.ip().is_unspecified() {
            allowed_hosts.push(addr.ip().to_string());
        }
        allowed_hosts.extend(args.allowed_host.iter().cloned());
        Ok(Some(Self {
            addr,
            principals,
            allowed_hosts,
            allowed_origins: args.allowed_origin.clone(),
            max_body_bytes,
            max_sessions: args.max_sessions,
            max_sessions_per_principal,
            session_idle: Duration::from_secs(args.session_idle_secs),
            max_concurrent_per_principal: args.max_concurrent_requests,
            max_streams_per_principal: args.max_streams_per_principal,
            drain: Duration::from_secs(args.drain_secs),
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            idle_connection: Duration::from_secs(args.idle_connection_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
        }))
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>()
        .with_context(|| format!("--http {s:?}: expected IP:PORT (e.g. 127.0.0.1:8765) or a port"))
}

/// Serves `server` over Streamable HTTP until SIGTERM or Ctrl-C, then
/// drains requests in flight and returns.
pub async fn serve(server: Server, options: HttpOptions) -> Result<()> {
    // With several principals, each gets a fair share of the execution
    // pool, so that one cannot fill it for the others.
    crate::principal::set_sharing(options.principals.as_ref().map_or(1, |p| p.len()));

    let ct = CancellationToken::new();
    let sessions = BoundedSessions::new(
        LocalSessionManager::default(),
        options.max_sessions,
        options.max_sessions_per_principal,
        options.session_idle,
    );
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(options.allowed_hosts.clone())
        .with_max_request_body_bytes(options.max_body_bytes)
        .with_cancellation_token(ct.clone());
    // Browser pages on this machine (any port) and the listed origins;
    // any other `Origin` is refused.
    let mut origins: Vec<String> = LOOPBACK_ORIGINS.iter().map(|o| o.to_string()).collect();
    origins.extend(options.allowed_origins.iter().cloned());
    config = config.with_allowed_origins(origins);
    let factory_server = server.clone();
    let service = StreamableHttpService::new(move || Ok(factory_server.for_session()), sessions.clone(), config);
    let gate = Arc::new(Gate::new(
        GateConfig {
            principals: options.principals,
            max_body_bytes: options.max_body_bytes,
            max_concurrent_per_principal: options.max_concurrent_per_principal,
            body_timeout: options.body_timeout,
            max_streams_per_principal: options.max_streams_per_principal,
        },
        service,
        sessions,
    ));

    // Each connection holds a descriptor: use all the hard limit allows,
    // and keep the cap below it, with room for the store and the sandbox.
    let nofile = conn::raise_nofile_limit();
    let max_connections = conn::clamp_connections(options.max_connections, nofile.map(|(now, _)| now));
    match nofile {
        Some((now, before)) => tracing::info!(
            nofile_soft_before = before,
            nofile_soft = now,
            reserve = conn::FD_RESERVE,
            max_connections,
            requested = options.max_connections,
            "descriptor limit: at most {max_connections} connections"
        ),
        None => tracing::info!(max_connections, "descriptor limit unknown"),
    }
    if max_connections < options.max_connections {
        tracing::warn!(
            "--max-connections {} lowered to {max_connections}: the descriptor limit is {} (raise `ulimit -n`)",
            options.max_connections,
            nofile.map(|(n, _)| n).unwrap_or(0)
        );
    }

    let listener =
        tokio::net::TcpListener::bind(options.addr).await.with_context(|| format!("listening on {}", options.addr))?;
    let bound = listener.local_addr().context("the bound address")?;
    tracing::info!(
        auth = if gate.has_auth() { "bearer" } else { "none (loopback)" },
        "serving MCP over Streamable HTTP at http://{bound}{MCP_PATH}"
    );

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper enforces no header timeout at all.
    // A request head is at most MAX_HEAD_BYTES (beyond: 431), so a client
    // that never finishes one holds at most that much memory.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(u32::try_from(options.max_concurrent_per_principal).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(options.header_timeout))
        .keep_alive_timeout(options.header_timeout);
    // One permit per open connection; with none left, nothing is accepted.
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = accept(&listener, &connections) => {
                let (accepted, permit) = accepted;
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, say: wait, then go on.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gate = gate.clone();
                let activity = conn::Activity::new();
                let watch = activity.clone();
                let service = hyper::service::service_fn(move |req| {
                    let gate = gate.clone();
                    // In flight from its head until its response body ends.
                    let active = activity.start();
                    async move {
                        let (parts, body) = gate.handle(req).await.into_parts();
                        let body = http_body_util::BodyExt::map_frame(body, move |f| {
                            active.hold();
                            f
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(parts, http_body_util::combinators::BoxBody::new(body)))
                    }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                let (first, idle) = (options.header_timeout, options.idle_connection);
                tokio::spawn(async move {
                    tokio::select! {
                        ended = conn => if let Err(e) = ended {
                            tracing::debug!(error = %e, "an HTTP connection ended with an error");
                        },
                        () = watch.expired(first, idle) => {
                            tracing::debug!("closing an HTTP connection with no request in flight");
                        }
                    }
                    drop(permit);
                });
            }
            signal = &mut stop => {
                tracing::info!("{signal}: draining requests in flight (at most {} s)", options.drain.as_secs());
                break;
            }
        }
    }
    drop(listener);
    let left = gate.drain(options.drain).await;
    if left > 0 {
        tracing::warn!(requests = left, "requests still running at the end of the drain are cut off");
    }
    // Ends the sessions and their streams, then closes idle connections.
    ct.cancel();
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await.is_err() {
        tracing::warn!("some HTTP connections did not close within 5 s");
    }
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// The next connection, once a connection permit is free.
async fn accept(
    listener: &tokio::net::TcpListener,
    connections: &Arc<tokio::sync::Semaphore>,
) -> (std::io::Result<(tokio::net::TcpStream, SocketAddr)>, Option<tokio::sync::OwnedSemaphorePermit>) {
    // The semaphore is never closed, so this only waits.
    let permit = connections.clone().acquire_owned().await.ok();
    (listener.accept().await, permit)
}

/// Resolves with the signal's name at SIGTERM or Ctrl-C.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_address_without_a_token_is_refused_with_the_reason() {
        let args = ServeArgs {
            http: Some("0.0.0.0:8765".into()),
            max_sessions: 1,
            max_concurrent_requests: 1,
            max_streams_per_principal: 1,
            session_idle_secs: 1,
            max_connections: 1,
            header_timeout_secs: 1,
            idle_connection_secs: 1,
            body_timeout_secs: 1,
            ..Default::default()
        };
        let e = HttpOptions::from_args(&args, None, 1024).unwrap_err().to_string();
        assert!(e.contains("without authentication"), "{e}");
        assert!(HttpOptions::from_args(&args, Some("t".into()), 1024).unwrap().is_some());
        let local = ServeArgs { http: Some("8765".into()), ..args };
        let o = HttpOptions::from_args(&local, None, 1024).unwrap().unwrap();
        assert!(o.addr.ip().is_loopback() && o.principals.is_none());
    }
}
