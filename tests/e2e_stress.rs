//! Stress: 100 and 1,000 executions in flight at once over one MCP stdio
//! connection. The semaphore makes the excess wait; nothing crashes and no
//! call fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::sync::Arc;

use serde_json::json;

async fn parallel(n: usize) {
    let s = Arc::new(common::spawn(&[]).await);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = s
                .exec_with(json!({"code": "let t = 0; for (let k = 0; k < 1000; k++) t += k; return t + context.input.i", "context": {"input": {"i": i}}}))
                .await;
            assert_eq!(r["status"], "success", "{r}");
            assert_eq!(r["output"], json!(499_500 + i));
        }));
    }
    for t in tasks {
        t.await.expect("no call failed");
    }
    let m = s.call("get_metrics", json!({})).await.structured_content.unwrap();
    assert_eq!(m["executions"]["by_status"]["success"], n);
    assert_eq!(m["pool"]["running"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_parallel_executions() {
    parallel(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_parallel_executions() {
    parallel(1000).await;
}
