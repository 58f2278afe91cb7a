//! Waiting on the learning pipeline through `health_check`, as a client
//! would: the analyzers loaded and the analysis queue drained.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, ok};

/// The server's `health_check` report.
pub async fn health(s: &Server) -> Value {
    ok(s, "health_check", json!({})).await
}

/// Waits until the analyzers are loaded and the worker has analysed at
/// least `n` episodes with nothing left queued; fails after 60 s.
pub async fn analysed(s: &Server, n: u64) -> Value {
    let started = Instant::now();
    loop {
        let h = health(s).await;
        let l = &h["learning"];
        if l["state"] == "ready" && l["analysis_backlog"] == 0 && l["worker"]["episodes_analyzed"].as_u64().unwrap_or(0) >= n {
            return h;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "analysis did not finish: {l}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
