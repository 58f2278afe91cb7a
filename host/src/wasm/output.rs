//! Captured stdout/stderr for a guest: kept up to a cap, the rest counted
//! and dropped, and a visible marker added when anything was dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Captured {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.buf.len());
        let take = room.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }
}

/// A WASI output stream that never fails the guest: past `cap` bytes it
/// discards and counts.
#[derive(Clone, Debug)]
pub struct CappedPipe {
    inner: Arc<Mutex<Captured>>,
}

impl CappedPipe {
    /// A pipe keeping at most `cap` bytes (0: a sink).
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                buf: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Captured) -> R) -> R {
        // A poisoned lock only means another writer panicked mid-push; the
        // bytes are still a valid prefix, so keep using them.
        let mut guard = crate::sync::lock(&self.inner);
        f(&mut guard)
    }

    /// The captured text (lossy UTF-8), with a marker if output was dropped.
    pub fn text(&self) -> String {
        self.with(|c| {
            let mut s = String::from_utf8_lossy(&c.buf).into_owned();
            if c.dropped > 0 {
                if !s.ends_with('\n') && !s.is_empty() {
                    s.push('\n');
                }
                s.push_str(&format!(
                    "[output truncated: {} bytes over the {}-byte limit were dropped]",
                    c.dropped, c.cap
                ));
            }
            s
        })
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.with(|c| c.dropped > 0)
    }
}

/// How much a guest may write in one go; writes past the cap are accepted
/// and dropped, so this is about chunking, not limiting.
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.with(|c| c.push(&bytes));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|c| c.push(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_prefix_and_marks_the_rest() {
        let mut p = CappedPipe::new(5);
        p.write(Bytes::from_static(b"hello world")).unwrap();
        assert!(p.truncated());
        assert_eq!(
            p.text(),
            "hello\n[output truncated: 6 bytes over the 5-byte limit were dropped]"
        );
    }

    #[test]
    fn untouched_under_the_cap() {
        let mut p = CappedPipe::new(64);
        p.write(Bytes::from_static(b"ok\n")).unwrap();
        assert!(!p.truncated());
        assert_eq!(p.text(), "ok\n");
    }
}
