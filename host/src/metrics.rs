//! Execution counters and latency percentiles, shared by the MCP tools
//! `health_check` and `get_metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters and a latency histogram for sandboxed executions since start-up; shared by every session, safe to use from any thread.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    by_status: HashMap<Status, AtomicU64>,
    /// Execution latency in microseconds (from admission to result);
    /// `None` only if the histogram could not be made (its bounds are
    /// constant and valid, so it always is), and then nothing is recorded.
    latency_us: Mutex<Option<Histogram<u64>>>,
    queued: AtomicU64,
}

/// Execution latency percentiles in milliseconds (from admission to result), over every execution since start-up; all 0 before any ran.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LatencySummary {
    /// Executions recorded.
    pub count: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th-percentile latency, ms.
    pub p95_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
    /// Slowest execution, ms.
    pub max_ms: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters; the uptime clock starts now.
    pub fn new() -> Self {
        let by_status = Status::ALL.iter().map(|s| (*s, AtomicU64::new(0))).collect();
        // 1 µs .. 1 hour at 3 significant digits; these bounds are valid, so
        // construction does not fail.
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok();
        Self {
            started: Instant::now(),
            by_status,
            latency_us: Mutex::new(hist),
            queued: AtomicU64::new(0),
        }
    }

    /// Counts one finished execution with its status and its time from admission to result (clamped to 1 µs..1 hour).
    pub fn record(&self, status: Status, took: Duration) {
        if let Some(c) = self.by_status.get(&status) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let us = (took.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Some(h) = crate::sync::lock(&self.latency_us).as_mut() {
            let _ = h.record(us);
        }
    }

    /// Counts an execution that starts waiting for a slot; pair with [`Metrics::dequeue`].
    pub fn enqueue(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts off an execution that stopped waiting for a slot.
    pub fn dequeue(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// Executions waiting for a slot right now.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Time since the counters were created (the server's start).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Executions finished since start-up by status name (every status present, 0 if none).
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        Status::ALL
            .iter()
            .map(|s| (s.as_str(), self.by_status.get(s).map_or(0, |c| c.load(Ordering::Relaxed))))
            .collect()
    }

    /// The median time from admission to result, once anything ran.
    pub fn median_execution(&self) -> Option<Duration> {
        let h = crate::sync::lock(&self.latency_us);
        h.as_ref().filter(|h| !h.is_empty()).map(|h| Duration::from_micros(h.value_at_quantile(0.50)))
    }

    /// The latency percentiles of every execution so far.
    pub fn latency(&self) -> LatencySummary {
        let h = crate::sync::lock(&self.latency_us);
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| h.as_ref().map_or(0.0, |h| ms(h.value_at_quantile(q)));
        LatencySummary {
            count: h.as_ref().map_or(0, |h| h.len()),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: h.as_ref().map_or(0.0, |h| ms(h.max())),
        }
    }
}

/// How an execution ended, for the counters: the `status` of its result
/// (`sandbox::ExecutionResult`), which re-exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It returned.
    Success,
    /// It did not compile, threw, or trapped.
    Error,
    /// Its wall clock ran out.
    Timeout,
    /// It hit a memory, output or code-size limit.
    ResourceLimit,
    /// It used something it was not granted.
    SecurityViolation,
    /// The client cancelled it.
    Cancelled,
    /// No slot was free and the queue was full.
    Busy,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 7] = [
        Status::Success,
        Status::Error,
        Status::Timeout,
        Status::ResourceLimit,
        Status::SecurityViolation,
        Status::Cancelled,
        Status::Busy,
    ];

    /// The status as it appears in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::ResourceLimit => "resource_limit",
            Status::SecurityViolation => "security_violation",
            Status::Cancelled => "cancelled",
            Status::Busy => "busy",
        }
    }
}
