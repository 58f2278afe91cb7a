//! What the remote embedders share: their base URL, a `wasi:http` JSON
//! POST with per-attempt timeouts, redirects (whose destination the host
//! checks like any other) and retries with exponential backoff, and the
//! checks every provider's answer must pass.
//!
//! The host decides where a request may go; this crate only asks.

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
pub mod provider;
mod url;
mod vectors;

#[cfg(target_arch = "wasm32")]
pub use http::{Request, post_json};
pub use url::Endpoint;
pub use vectors::{check_batch, normalise, parse_vector};

/// Why a call failed, mapped one to one onto the WIT `embed-error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The configuration cannot be used (e.g. a bad base URL).
    InvalidConfig(String),
    /// The provider could not be reached or answered 5xx.
    Unavailable(String),
    /// The destination is not granted by the host's policy.
    Denied(String),
    /// An attempt ran past its timeout.
    Timeout,
    /// The provider's answer could not be used.
    BadResponse(String),
    /// The request or the answer is over a size limit.
    TooLarge(String),
}

impl Failure {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Failure::Unavailable(_) | Failure::Timeout)
    }
}

/// Runs `attempt` up to `1 + retries` times while it fails retryably,
/// sleeping `backoff(n)` between attempts.
pub fn with_retries<T>(
    retries: u32,
    mut sleep: impl FnMut(std::time::Duration),
    mut attempt: impl FnMut() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let mut n = 0;
    loop {
        match attempt() {
            Err(f) if f.retryable() && n < retries => {
                sleep(backoff(n));
                n += 1;
            }
            other => return other,
        }
    }
}

/// The delay before retry `attempt`: the schedule the host shares.
pub use backoff::delay as backoff;

/// The JSON body's text with anything past `max` chars cut, for errors.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_what_may_pass() {
        let mut slept = Vec::new();
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            3,
            |d| slept.push(d),
            || {
                calls += 1;
                Err(Failure::Timeout)
            },
        );
        assert_eq!(r, Err(Failure::Timeout));
        assert_eq!(calls, 4);
        assert_eq!(slept, vec![backoff(0), backoff(1), backoff(2)]);
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            3,
            |_| {},
            || {
                calls += 1;
                Err(Failure::Denied("x".into()))
            },
        );
        assert!(matches!(r, Err(Failure::Denied(_))));
        assert_eq!(calls, 1);
        assert_eq!(backoff(10), std::time::Duration::from_secs(5));
    }
}
