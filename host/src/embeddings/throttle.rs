//! The re-embedding job's throttle: queries take priority over the job's
//! batches, and the job is busy at most [`DUTY_CYCLE`] of the time.
//!
//! A query holds a [`QueryTurn`] while its text is embedded; before each
//! batch the job waits until no query holds one (for at most
//! [`MAX_YIELD`], so a steady stream of queries slows the job without
//! stopping it). After each batch the job pauses in proportion to the
//! batch's time, so that busy / (busy + paused) stays at or below the duty
//! cycle. Both are counted, and `health_check` reports them
//! (`embeddings.reembedding.throttle`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::Notify;

/// The largest fraction of wall time the job spends embedding.
pub const DUTY_CYCLE: f64 = 0.5;
/// The longest a job batch waits for queries to finish.
pub const MAX_YIELD: Duration = Duration::from_secs(5);
/// The longest pause after one batch.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// What the throttle has done since start-up.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ThrottleStats {
    /// The configured duty cycle.
    pub duty_cycle: f64,
    /// Milliseconds the job spent embedding.
    pub busy_ms: f64,
    /// Milliseconds the job paused after its batches.
    pub paused_ms: f64,
    /// Milliseconds the job waited for queries to finish.
    pub yielded_ms: f64,
    /// Batches that waited for a query first.
    pub yields: u64,
    /// busy / (busy + paused + yielded): at most `duty_cycle`.
    pub measured_duty: f64,
}

/// The query lane and the job's duty cycle.
#[derive(Default)]
pub struct Throttle {
    queries: AtomicUsize,
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

impl Throttle {
    /// A query's turn: job batches wait while it is held.
    pub fn query(&self) -> QueryTurn<'_> {
        self.queries.fetch_add(1, Ordering::AcqRel);
        QueryTurn(self)
    }

    /// Waits until no query is embedding (at most [`MAX_YIELD`]).
    pub async fn job_turn(&self) {
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
    }

    /// Records a batch that took `busy` and returns how long to pause
    /// before the next, so the job keeps to [`DUTY_CYCLE`].
    pub fn after_batch(&self, busy: Duration) -> Duration {
        let pause = busy.mul_f64((1.0 - DUTY_CYCLE) / DUTY_CYCLE).min(MAX_PAUSE);
        let mut s = crate::sync::lock(&self.stats);
        s.busy_ms += busy.as_secs_f64() * 1000.0;
        s.paused_ms += pause.as_secs_f64() * 1000.0;
        pause
    }

    /// The figures so far.
    pub fn stats(&self) -> ThrottleStats {
        let mut s = crate::sync::lock(&self.stats).clone();
        s.duty_cycle = DUTY_CYCLE;
        let total = s.busy_ms + s.paused_ms + s.yielded_ms;
        s.measured_duty = if total > 0.0 { (s.busy_ms / total * 1000.0).round() / 1000.0 } else { 0.0 };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_job_waits_for_queries_and_keeps_its_duty_cycle() {
        let t = std::sync::Arc::new(Throttle::default());
        let turn = t.query();
        let job = {
            let t = t.clone();
            tokio::spawn(async move { t.job_turn().await })
        };
        tokio::task::yield_now().await;
        assert!(!job.is_finished());
        drop(turn);
        job.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.stats().yields, 1);
        let pause = t.after_batch(Duration::from_millis(100));
        assert_eq!(pause, Duration::from_millis(100));
        assert!(t.stats().measured_duty <= DUTY_CYCLE + 1e-9);
    }
}
