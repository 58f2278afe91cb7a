//! `resources/subscribe` and `resources/unsubscribe` (issue 19): each
//! session (each connection over stdio) keeps the episode URIs it
//! subscribed to, at most [`MAX_PER_SESSION`]; when the store says an
//! episode changed (a step, its completion, tags or metadata, deletion),
//! each session subscribed to `memory://episodes/{id}` gets
//! `notifications/resources/updated` for it. A session whose send fails or
//! stalls, or that has ended, is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::memory::EpisodeStore;

const EPISODES: &str = "memory://episodes/";
/// Most URIs one session may be subscribed to at once.
pub const MAX_PER_SESSION: usize = 256;
/// Most sessions with subscriptions at once.
pub const MAX_SESSIONS: usize = 4096;
/// How long one notification may take to be queued for a session before
/// the session is dropped from the subscribers.
const SEND_WAIT: Duration = Duration::from_secs(5);
/// How much of an unknown URI an error repeats.
const URI_SHOWN: usize = 200;

/// One session's subscribed URIs (fresh per session; dropped with it).
pub type SessionUris = Arc<Mutex<HashSet<String>>>;

/// One subscribed session: its URIs (weak: dropped with the session) and
/// the peer to notify.
type Subscriber = (Weak<Mutex<HashSet<String>>>, Peer<RoleServer>);

/// Every session with subscriptions, and the task that tells them of
/// changes (started at the first subscription).
#[derive(Default)]
pub struct Subscriptions {
    sessions: Mutex<Vec<Subscriber>>,
    started: OnceLock<()>,
}

/// The episode a subscribable URI names, or an error naming the URI.
pub fn episode_of(uri: &str) -> Result<Uuid, ErrorData> {
    uri.strip_prefix(EPISODES).and_then(|id| Uuid::parse_str(id).ok()).ok_or_else(|| {
        let shown: String = uri.chars().take(URI_SHOWN).collect();
        ErrorData::resource_not_found(
            format!("{shown} is not a resource this server serves for subscriptions; the subscribable resources are memory://episodes/{{id}}"),
            None,
        )
    })
}

fn live(s: &(Weak<Mutex<HashSet<String>>>, Peer<RoleServer>)) -> bool {
    s.0.strong_count() > 0 && !s.1.is_transport_closed()
}

impl Subscriptions {
    /// Adds `uri` to the session's set, registering the session (and
    /// starting the notifier) on its first subscription.
    pub fn subscribe(
        self: &Arc<Self>,
        store: &Arc<EpisodeStore>,
        session: &SessionUris,
        peer: Peer<RoleServer>,
        uri: String,
    ) -> Result<(), ErrorData> {
        {
            let mut set = crate::sync::lock(session);
            if !set.contains(&uri) && set.len() >= MAX_PER_SESSION {
                return Err(ErrorData::invalid_params(
                    format!("this session is subscribed to {MAX_PER_SESSION} resources, the most it may be; unsubscribe from one first"),
                    None,
                ));
            }
            set.insert(uri);
        }
        {
            let mut sessions = crate::sync::lock(&self.sessions);
            sessions.retain(live);
            if !sessions.iter().any(|(w, _)| w.as_ptr() == Arc::as_ptr(session)) {
                if sessions.len() >= MAX_SESSIONS {
                    drop(sessions);
                    crate::sync::lock(session).clear();
                    return Err(ErrorData::internal_error(
                        format!("too many sessions with subscriptions (at most {MAX_SESSIONS})"),
                        None,
                    ));
                }
                sessions.push((Arc::downgrade(session), peer));
            }
        }
        self.start(store);
        Ok(())
    }

    fn start(self: &Arc<Self>, store: &Arc<EpisodeStore>) {
        if self.started.set(()).is_err() {
            return;
        }
        let mut changes = store.changes();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let id = match changes.recv().await {
                    Ok(id) => id,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("resource subscriptions: {n} episode changes were not announced (too many at once)");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let Some(me) = me.upgrade() else { return };
                me.announce(&format!("{EPISODES}{id}")).await;
            }
        });
    }

    /// Sends `notifications/resources/updated` for `uri` to each session
    /// subscribed to it; drops sessions that are gone or fail.
    async fn announce(&self, uri: &str) {
        let targets: Vec<Subscriber> = {
            let mut sessions = crate::sync::lock(&self.sessions);
            sessions.retain(live);
            sessions
                .iter()
                .filter(|(w, _)| w.upgrade().is_some_and(|set| crate::sync::lock(&set).contains(uri)))
                .cloned()
                .collect()
        };
        for (set, peer) in targets {
            let sent = tokio::time::timeout(SEND_WAIT, peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri))).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::info!("resource subscriptions: dropping a session that could not be told of {uri}");
                crate::sync::lock(&self.sessions).retain(|(w, _)| !w.ptr_eq(&set));
            }
        }
    }
}
