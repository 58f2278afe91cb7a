//! Who a request is from: the unit of isolation and attribution.
//!
//! Over stdio there is one principal, [`Principal::local`]. Over Streamable
//! HTTP the authenticated bearer token names it (`http/auth.rs`), and
//! the HTTP layer puts it into the request's extensions, which rmcp hands
//! to every handler inside the request's `http::request::Parts` (sessions
//! and sessionless 2026-07-28 requests alike). A principal keys its own
//! recent executions for `save_plugin`, its share of tool-call rate limits
//! and of concurrency, and its tool-call audit records.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, DropGuard};

tokio::task_local! {
    /// The principal of the MCP request this task serves: set around each
    /// `tools/call` (and by the HTTP layer around each request), so what a
    /// call does on its behalf (sandbox tool calls, rate limits, the audit,
    /// `memory.*` calls from code) is its principal's.
    static CALLER: Principal;
}

/// How many principals share this server's execution pool (0 or 1: no
/// per-principal share).
static SHARING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Says how many principals share the code-execution pool: with several
/// (a token file naming more than one), each may hold at most its fair
/// share of the pool's slots at once ([`execution_share`]), so that one
/// cannot fill it. Set by the HTTP transport.
pub fn set_sharing(principals: usize) {
    SHARING.store(principals, std::sync::atomic::Ordering::Relaxed);
}

/// The most of a `total` one principal may use (slots of the execution
/// pool held at once, calls of a tool in a rate window):
/// ceil(total / principals) with several principals, else `total`.
pub fn fair_share(total: usize) -> usize {
    match SHARING.load(std::sync::atomic::Ordering::Relaxed) {
        0 | 1 => total,
        n => total.div_ceil(n).max(1),
    }
}

/// A principal's name (from the token file, or `local` / `token`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(Arc<str>);

/// The principal of a stdio session, and of requests with no principal
/// attached (in-process calls).
pub const LOCAL: &str = "local";

impl Principal {
    /// The principal named `name` (as the token file names it).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The one principal of a stdio session.
    pub fn local() -> Self {
        Self(Arc::from(LOCAL))
    }

    /// Its name, as audits, logs and `saved_by` record it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The principal of the request this task serves ([`Principal::scope`]);
    /// [`Principal::local`] outside one.
    pub fn current() -> Self {
        CALLER.try_with(Self::clone).unwrap_or_else(|_| Self::local())
    }

    /// Runs `work` as this principal's: [`Principal::current`] inside it
    /// is `self`.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        CALLER.scope(self, work).await
    }

    /// The principal a request's extensions carry, set by the HTTP layer;
    /// [`Principal::local`] when there is none (stdio, in-process calls).
    pub fn of(extensions: &rmcp::model::Extensions) -> Self {
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .or_else(|| extensions.get::<Principal>())
            .cloned()
            .unwrap_or_else(Self::local)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cancelled when the HTTP client that sent a request is gone (its
/// response dropped before the end) or the response has ended; the HTTP
/// layer puts it into the request's extensions, as it does the principal.
#[derive(Clone, Debug)]
pub struct HangUp(pub CancellationToken);

impl HangUp {
    fn of(extensions: &rmcp::model::Extensions) -> Option<CancellationToken> {
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<HangUp>())
            .or_else(|| extensions.get::<HangUp>())
            .map(|h| h.0.clone())
    }
}

/// A token cancelled when `cancel` is (the client cancelled the call) or
/// when the request's HTTP client hangs up, so the work stops with it.
/// Keep the guard while the work runs; dropping it ends the link.
pub fn cancelled_with_client(cancel: &CancellationToken, extensions: &rmcp::model::Extensions) -> (CancellationToken, DropGuard) {
    let linked = cancel.child_token();
    if let Some(hang_up) = HangUp::of(extensions) {
        let linked = linked.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = hang_up.cancelled() => linked.cancel(),
                () = linked.cancelled() => {}
            }
        });
    }
    let guard = linked.clone().drop_guard();
    (linked, guard)
}
