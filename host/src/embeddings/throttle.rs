//! Background embedding yields to queries: the re-embedding job's batches
//! and the embedding worker's run at full speed while no query has come
//! for [`QUERY_WINDOW`], and give way while queries come.
//!
//! A query holds a [`QueryTurn`] while its text is embedded. Before each
//! batch, background work waits until no query holds one (for at most
//! [`MAX_YIELD`], so a steady stream of queries slows it without stopping
//! it). How big the batch is and whether it pauses after it depends on
//! when the last query came:
//! - **Quiet** (no query for [`QUERY_WINDOW`]): batches of the caller's
//!   full size, no pause: the job is as fast as the provider.
//! - **Queries coming**: batches of at most [`SMALL_BATCH`] texts, so a
//!   query that shares the provider's instance (the embedding worker's
//!   batches do) waits for a few texts rather than a whole batch, and a
//!   pause as long as the batch took, so background work is busy at most
//!   [`DUTY_CYCLE_WHILE_QUERIES`] of the time while they come.
//!
//! Everything is counted, and `health_check` reports it
//! (`embeddings.reembedding.throttle`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::Notify;

/// How long after a query background embedding still counts queries as
/// coming.
pub const QUERY_WINDOW: Duration = Duration::from_secs(2);
/// The largest share of wall time background embedding is busy while
/// queries come.
pub const DUTY_CYCLE_WHILE_QUERIES: f64 = 0.5;
/// The most texts in a background batch while queries come.
pub const SMALL_BATCH: usize = 4;
/// The longest a background batch waits for queries to finish.
pub const MAX_YIELD: Duration = Duration::from_secs(5);
/// The longest pause after one batch.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// What the throttle has done since start-up.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ThrottleStats {
    /// `full speed` (no query for `query_window_ms`) or `yielding to
    /// queries`.
    pub mode: &'static str,
    /// How long after a query it still counts as queries coming, in ms.
    pub query_window_ms: u64,
    /// The most texts per batch while queries come.
    pub small_batch: usize,
    /// The largest busy share while queries come.
    pub duty_cycle_while_queries: f64,
    /// Batches run at full speed (no query within the window).
    pub full_batches: u64,
    /// Batches run while queries came (small, followed by a pause).
    pub yielding_batches: u64,
    /// Milliseconds spent embedding in full-speed batches.
    pub busy_full_ms: f64,
    /// Milliseconds spent embedding in batches while queries came.
    pub busy_yielding_ms: f64,
    /// Milliseconds paused after batches while queries came.
    pub paused_ms: f64,
    /// Milliseconds batches waited for a query's embedding to finish.
    pub yielded_ms: f64,
    /// Batches that waited for a query first.
    pub yields: u64,
    /// While queries came: busy / (busy + paused + yielded), at most
    /// `duty_cycle_while_queries` (0 before any such batch).
    pub measured_duty_while_queries: f64,
}

/// The query lane, and how background embedding gives way to it.
#[derive(Default)]
pub struct Throttle {
    queries: AtomicUsize,
    /// When the last query started embedding.
    last_query: Mutex<Option<Instant>>,
    quiet: Notify,
    stats: Mutex<ThrottleStats>,
}

/// Held by a query while it embeds its text.
pub struct QueryTurn<'a>(&'a Throttle);

impl Drop for QueryTurn<'_> {
    fn drop(&mut self) {
        if self.0.queries.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

/// One background batch: how many texts it may take, and whether queries
/// were coming when it was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The most texts to embed in this batch.
    pub texts: usize,
    /// Whether queries were coming (the batch is small and paused after).
    pub yielding: bool,
    /// When it was planned.
    planned: Instant,
}

impl Throttle {
    /// A query's turn: background batches wait while it is held, and the
    /// next ones are small and paused after.
    pub fn query(&self) -> QueryTurn<'_> {
        self.queries.fetch_add(1, Ordering::AcqRel);
        *crate::sync::lock(&self.last_query) = Some(Instant::now());
        QueryTurn(self)
    }

    /// Whether a query is embedding or came within [`QUERY_WINDOW`].
    pub fn queries_coming(&self) -> bool {
        self.queries.load(Ordering::Acquire) > 0
            || crate::sync::lock(&self.last_query).is_some_and(|t| t.elapsed() < QUERY_WINDOW)
    }

    /// Waits until no query is embedding (at most [`MAX_YIELD`]), then
    /// plans a batch of at most `full` texts: `full` when quiet, at most
    /// [`SMALL_BATCH`] while queries come.
    pub async fn background_turn(&self, full: usize) -> Plan {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            if self.queries.load(Ordering::Acquire) == 0 {
                break;
            }
            waited = true;
            let left = MAX_YIELD.saturating_sub(started.elapsed());
            if left.is_zero() || tokio::time::timeout(left, quiet).await.is_err() {
                break;
            }
        }
        if waited {
            let mut s = crate::sync::lock(&self.stats);
            s.yields += 1;
            s.yielded_ms += started.elapsed().as_secs_f64() * 1000.0;
        }
        let yielding = self.queries_coming();
        let texts = if yielding { full.min(SMALL_BATCH) } else { full }.max(1);
        Plan { texts, yielding, planned: Instant::now() }
    }

    /// Records a batch planned as `plan` that took `busy`, and returns how
    /// long to pause before the next: nothing at full speed; while queries
    /// come (when it was planned, or one came while it ran), as long as
    /// the batch took, so the busy share stays at
    /// [`DUTY_CYCLE_WHILE_QUERIES`].
    pub fn after_batch(&self, plan: Plan, busy: Duration) -> Duration {
        let came_meanwhile = crate::sync::lock(&self.last_query).is_some_and(|t| t >= plan.planned);
        let yielding = plan.yielding || came_meanwhile || self.queries_coming();
        let pause = if yielding {
            busy.mul_f64((1.0 - DUTY_CYCLE_WHILE_QUERIES) / DUTY_CYCLE_WHILE_QUERIES).min(MAX_PAUSE)
        } else {
            Duration::ZERO
        };
        let ms = busy.as_secs_f64() * 1000.0;
        let mut s = crate::sync::lock(&self.stats);
        if yielding {
            s.yielding_batches += 1;
            s.busy_yielding_ms += ms;
            s.paused_ms += pause.as_secs_f64() * 1000.0;
        } else {
            s.full_batches += 1;
            s.busy_full_ms += ms;
        }
        pause
    }

    /// The figures so far.
    pub fn stats(&self) -> ThrottleStats {
        let mut s = crate::sync::lock(&self.stats).clone();
        s.mode = if self.queries_coming() { "yielding to queries" } else { "full speed" };
        s.query_window_ms = QUERY_WINDOW.as_millis() as u64;
        s.small_batch = SMALL_BATCH;
        s.duty_cycle_while_queries = DUTY_CYCLE_WHILE_QUERIES;
        let total = s.busy_yielding_ms + s.paused_ms + s.yielded_ms;
        s.measured_duty_while_queries = if total > 0.0 { (s.busy_yielding_ms / total * 1000.0).round() / 1000.0 } else { 0.0 };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_means_full_batches_without_a_pause() {
        let t = Throttle::default();
        let plan = t.background_turn(32).await;
        assert_eq!((plan.texts, plan.yielding), (32, false));
        assert_eq!(t.after_batch(plan, Duration::from_millis(500)), Duration::ZERO);
        let s = t.stats();
        assert_eq!((s.full_batches, s.yielding_batches, s.mode), (1, 0, "full speed"));
    }

    #[tokio::test]
    async fn queries_come_first_then_batches_are_small_and_paused() {
        let t = std::sync::Arc::new(Throttle::default());
        let turn = t.query();
        let job = {
            let t = t.clone();
            tokio::spawn(async move { t.background_turn(32).await })
        };
        tokio::task::yield_now().await;
        assert!(!job.is_finished(), "a batch waits while a query embeds");
        drop(turn);
        let plan = job.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((plan.texts, plan.yielding), (SMALL_BATCH, true));
        assert_eq!(t.after_batch(plan, Duration::from_millis(100)), Duration::from_millis(100));
        let s = t.stats();
        assert_eq!((s.yields, s.yielding_batches), (1, 1));
        assert!(s.measured_duty_while_queries <= DUTY_CYCLE_WHILE_QUERIES + 1e-9, "{s:?}");
    }

    #[tokio::test]
    async fn a_query_during_a_full_batch_pauses_the_next() {
        let t = Throttle::default();
        let plan = t.background_turn(32).await;
        assert!(!plan.yielding);
        drop(t.query());
        assert_eq!(t.after_batch(plan, Duration::from_millis(300)), Duration::from_millis(300));
        assert_eq!(t.stats().yielding_batches, 1);
    }
}
