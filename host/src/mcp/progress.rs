//! `notifications/progress` for long calls whose request carries a
//! `progressToken` (issue 18, finding 9): plugin builds (`save_plugin`) and
//! the re-embedding `configure_embeddings` waits for. Reports go through a
//! bounded queue to one sender task; [`Progress::finish`] drains it before
//! the call answers, so no report follows the response.

use rmcp::model::{ProgressNotificationParam, RequestMetaObject};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

/// Reports waiting to be sent; when full, a report is dropped (the next
/// one carries the newer figure).
const QUEUE: usize = 16;

pub struct Progress {
    tx: Option<mpsc::Sender<(f64, String)>>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Progress out of `total` for the request `meta` belongs to; reports
    /// nothing when the request has no `progressToken`.
    pub fn new(peer: &Peer<RoleServer>, meta: &RequestMetaObject, total: Option<f64>) -> Self {
        let Some(token) = meta.get_progress_token() else {
            return Self { tx: None, sender: None };
        };
        let (tx, mut rx) = mpsc::channel::<(f64, String)>(QUEUE);
        let peer = peer.clone();
        let sender = tokio::spawn(async move {
            while let Some((progress, message)) = rx.recv().await {
                let mut param = ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if let Some(t) = total {
                    param = param.with_total(t);
                }
                if let Err(e) = peer.notify_progress(param).await {
                    tracing::debug!(error = %e, "could not send a progress notification");
                    return;
                }
            }
        });
        Self { tx: Some(tx), sender: Some(sender) }
    }


    /// Queues one report (progress must grow from report to report).
    pub fn report(&self, progress: f64, message: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send((progress, message.into()));
        }
    }

    /// Sends what is queued, then stops: call before answering.
    pub async fn finish(mut self) {
        self.tx.take();
        if let Some(sender) = self.sender.take() {
            let _ = sender.await;
        }
    }
}
