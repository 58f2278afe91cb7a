//! Who a request is from: the unit of isolation and attribution.
//!
//! Over stdio there is one principal, [`Principal::local`]. Over Streamable
//! HTTP the authenticated bearer token names it (`crate::http::auth`), and
//! the HTTP layer puts it into the request's extensions, which rmcp hands
//! to every handler inside the request's `http::request::Parts` (sessions
//! and sessionless 2026-07-28 requests alike). A principal keys its own
//! recent executions for `save_plugin`, its share of tool-call rate limits
//! and of concurrency, and its tool-call audit records.

use std::fmt;
use std::sync::Arc;

/// A principal's name (from the token file, or `local` / `token`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(Arc<str>);

/// The principal of a stdio session, and of requests with no principal
/// attached (in-process calls).
pub const LOCAL: &str = "local";

impl Principal {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The one principal of a stdio session.
    pub fn local() -> Self {
        Self(Arc::from(LOCAL))
    }

    pub fn name(&self) -> &str {
        &self.0
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
