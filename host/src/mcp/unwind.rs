//! A panic while handling a request becomes an error reply to that
//! request, and the server goes on serving. Nothing a client or a guest
//! sends should panic the server; this is the net under that rule, so a
//! bug costs one request, never the session.
//!
//! ```
//! # tokio_test_block_on(async {
//! use memory_mcp::mcp::caught;
//! let r: Result<(), _> = caught("tools/call", async { panic!("a bug") }).await;
//! assert!(r.is_err());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use rmcp::ErrorData;

static CAUGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Panics caught in this process so far (each one is a bug to fix; the
/// fuzz target asserts there are none).
pub fn panics_caught() -> u64 {
    CAUGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `handler`; a panic inside it is logged and answered as an
/// internal error naming `what`.
pub async fn caught<T>(what: &str, handler: impl Future<Output = Result<T, ErrorData>>) -> Result<T, ErrorData> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            CAUGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".into());
            tracing::error!(request = what, panic = %message, "a request handler panicked; answered with an error");
            Err(ErrorData::internal_error(
                format!("internal error while handling {what}; the request was not completed, and the server is still running"),
                None,
            ))
        }
    }
}
