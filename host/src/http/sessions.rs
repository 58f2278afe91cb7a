//! A bounded number of MCP sessions (protocol versions before 2026-07-28):
//! rmcp's in-process session manager, with a limit on sessions in all and
//! on each principal's, so one principal cannot take every session. A
//! session ends on `DELETE` or after its idle timeout; a session is idle
//! only while no request of its runs and no stream of its (a GET stream
//! included) is open. Either way rmcp removes it from the map, which frees
//! its slot, its streams and its handler (and with it the session's
//! subscriptions).
//!
//! The principal creating a session is [`Principal::current`], which the
//! gate sets around each request, so the limits are checked and the
//! session recorded under one lock.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use crate::principal::Principal;

/// Why a session could not be created or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionsError {
    /// The server already has its most sessions open.
    #[error(
        "too many MCP sessions: {max} are open, the limit (--max-sessions); end one with DELETE, or wait for an idle one to time out"
    )]
    TooMany {
        /// The limit, `--max-sessions`.
        max: usize,
    },
    /// This principal already has its most sessions open.
    #[error(
        "principal `{principal}` has {max} MCP sessions open, its limit (--max-sessions-per-principal); end one with DELETE, or wait for an idle one to time out"
    )]
    TooManyForPrincipal {
        /// The principal that asked.
        principal: Principal,
        /// Its limit, `--max-sessions-per-principal`.
        max: usize,
    },
    /// rmcp's session manager failed (e.g. an unknown session id).
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// What is known of one open session.
struct Tracked {
    owner: Principal,
    /// The end of its last request or stream (or its start).
    last: Instant,
    /// Its streams open now (request streams and GET streams).
    streams: usize,
}

type Table = Arc<Mutex<HashMap<String, Tracked>>>;

/// rmcp's [`LocalSessionManager`] with session limits and an idle timeout
/// that open streams hold off.
pub struct BoundedSessions {
    inner: LocalSessionManager,
    max: usize,
    max_per_principal: usize,
    idle: Duration,
    table: Table,
    /// Serialises session creation, so the limits are exact.
    creating: tokio::sync::Mutex<()>,
}

impl BoundedSessions {
    /// `inner`'s own keep-alive is switched off: the idle timeout is kept
    /// here, by a task that ends with the manager.
    pub fn new(mut inner: LocalSessionManager, max: usize, max_per_principal: usize, idle: Duration) -> Arc<Self> {
        inner.session_config.keep_alive = None;
        let this =
            Arc::new(Self { inner, max, max_per_principal, idle, table: Table::default(), creating: Default::default() });
        let weak = Arc::downgrade(&this);
        tokio::spawn(reap_idle(weak, (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))));
        this
    }

    /// Sessions open now.
    pub async fn count(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    /// Whether a session with this id is open.
    pub async fn contains(&self, id: &str) -> bool {
        self.inner.sessions.read().await.contains_key(id)
    }

    /// The principal that opened session `id`, while it is open.
    pub fn owner(&self, id: &str) -> Option<Principal> {
        crate::sync::lock(&self.table).get(id).map(|t| t.owner.clone())
    }

    /// Why `principal` may not open a session now, if it may not.
    pub async fn refusal(&self, principal: &Principal) -> Option<SessionsError> {
        self.forget_ended().await;
        self.check(principal).await.err()
    }

    async fn check(&self, principal: &Principal) -> Result<(), SessionsError> {
        if self.count().await >= self.max {
            return Err(SessionsError::TooMany { max: self.max });
        }
        let own = crate::sync::lock(&self.table).values().filter(|t| &t.owner == principal).count();
        if own >= self.max_per_principal {
            return Err(SessionsError::TooManyForPrincipal { principal: principal.clone(), max: self.max_per_principal });
        }
        Ok(())
    }

    /// Drops what is known of sessions rmcp no longer has.
    async fn forget_ended(&self) {
        let open = self.inner.sessions.read().await;
        crate::sync::lock(&self.table).retain(|id, _| open.contains_key(id.as_str()));
    }

    fn touch(&self, id: &str) {
        if let Some(t) = crate::sync::lock(&self.table).get_mut(id) {
            t.last = Instant::now();
        }
    }

    /// `stream`, counted as open for session `id` until it is dropped.
    fn counted<S>(&self, id: &str, stream: S) -> Counted
    where
        S: Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    {
        if let Some(t) = crate::sync::lock(&self.table).get_mut(id) {
            t.streams += 1;
            t.last = Instant::now();
        }
        Counted { inner: Box::pin(stream), table: Arc::downgrade(&self.table), id: id.to_owned() }
    }

    /// Ends the sessions idle longer than the timeout.
    async fn reap(&self) {
        self.forget_ended().await;
        let idle: Vec<String> = crate::sync::lock(&self.table)
            .iter()
            .filter(|(_, t)| t.streams == 0 && t.last.elapsed() >= self.idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            tracing::debug!(session = %id, "ending an idle MCP session");
            if let Err(e) = self.close_session(&SessionId::from(id.as_str())).await {
                tracing::warn!(error = %e, "ending an idle MCP session failed");
            }
        }
    }
}

async fn reap_idle(sessions: Weak<BoundedSessions>, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(sessions) = sessions.upgrade() else { return };
        sessions.reap().await;
    }
}

/// A session's stream, counted as open until dropped.
pub struct Counted {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    table: Weak<Mutex<HashMap<String, Tracked>>>,
    id: String,
}

impl Stream for Counted {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerSseMessage>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade()
            && let Some(t) = crate::sync::lock(&table).get_mut(&self.id)
        {
            t.streams = t.streams.saturating_sub(1);
            t.last = Instant::now();
        }
    }
}

impl SessionManager for BoundedSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        let principal = Principal::current();
        self.forget_ended().await;
        self.check(&principal).await?;
        let (id, transport) = self.inner.create_session().await?;
        crate::sync::lock(&self.table)
            .insert(id.to_string(), Tracked { owner: principal, last: Instant::now(), streams: 0 });
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        crate::sync::lock(&self.table).remove(id.as_ref());
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_stream(id, message).await?;
        Ok(self.counted(id, stream))
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.touch(id);
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        Ok(self.counted(id, stream))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.resume(id, last_event_id).await?;
        Ok(self.counted(id, stream))
    }
}
