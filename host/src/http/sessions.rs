//! A bounded number of MCP sessions (protocol versions before 2026-07-28):
//! rmcp's in-process session manager, refusing a new session past the
//! limit with a clear error. A session ends on `DELETE` or after its idle
//! timeout; either way rmcp removes it from the map, which frees its slot,
//! its streams and its handler (and with it the session's subscriptions).

use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use rmcp::transport::common::server_side_http::ServerSseMessage;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionsError {
    #[error(
        "too many MCP sessions: {max} are open, the limit (--max-sessions); end one with DELETE, or wait for an idle one to time out"
    )]
    TooMany { max: usize },
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's [`LocalSessionManager`] with a session limit.
pub struct BoundedSessions {
    inner: LocalSessionManager,
    max: usize,
}

impl BoundedSessions {
    pub fn new(inner: LocalSessionManager, max: usize) -> Arc<Self> {
        Arc::new(Self { inner, max })
    }

    /// Sessions open now.
    pub async fn count(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether a session with this id is open.
    pub async fn contains(&self, id: &str) -> bool {
        self.inner.sessions.read().await.contains_key(id)
    }
}

impl SessionManager for BoundedSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // The check and the insert are not under one lock; the worst case is
        // a brief overshoot by concurrent initializations, which the gate's
        // check (before the body reaches rmcp) keeps rare.
        if self.count().await >= self.max {
            return Err(SessionsError::TooMany { max: self.max });
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}
