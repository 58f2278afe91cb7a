//! What an execution returns: the `status`-tagged result agents read.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

pub use crate::metrics::Status;

/// Why an execution ended in `status: "error"` (`error_type` in the result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The code did not compile.
    Syntax,
    /// The code threw, or its result could not be returned.
    Runtime,
}

/// Which enforced limit stopped an execution (`limit` in a
/// `resource_limit` result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The guest's linear memory would have grown past the memory limit.
    Memory,
    /// stdout, stderr or the returned value passed the output byte limit.
    Output,
    /// The submitted code is longer than the code size limit; nothing ran.
    CodeSize,
}

/// The result of one `execute_agent_code` call.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExecutionResult {
    /// The code ran to completion and its value was returned.
    Success {
        /// The returned value; absent when the code returned `undefined`.
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// What the code printed with `console.log` (bounded by the output limit).
        stdout: String,
        /// What the code printed with `console.error`/`console.warn`.
        stderr: String,
        /// Wall-clock time in the guest, in milliseconds.
        execution_time_ms: f64,
    },
    /// The code failed to compile or threw.
    Error {
        /// Whether it failed to compile or threw at run time.
        error_type: ErrorType,
        /// The error's message, bounded to [`MAX_MESSAGE_BYTES`].
        message: String,
        /// 1-based line in the submitted code, where known.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        /// 1-based column in the submitted code, where known.
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<u32>,
        /// Output written before the error.
        stdout: String,
        /// Error output written before the error.
        stderr: String,
        /// Wall-clock time in the guest until the error, in milliseconds.
        execution_time_ms: f64,
    },
    /// The code ran past its timeout and was stopped (epoch interruption).
    Timeout {
        /// How long it ran before it was stopped, in milliseconds.
        elapsed_ms: f64,
        /// Output written before the timeout.
        stdout: String,
        /// Error output written before the timeout.
        stderr: String,
    },
    /// An enforced limit (memory, output, code size) stopped the code.
    ResourceLimit {
        /// Which limit it reached.
        limit: LimitKind,
        /// What was exceeded and by how much, for the agent.
        message: String,
        /// Output written before the limit was reached.
        stdout: String,
        /// Error output written before the limit was reached.
        stderr: String,
    },
    /// The code tried something its grants do not allow (a denied tool or
    /// import); it was stopped.
    SecurityViolation {
        /// What was denied, for the agent.
        reason: String,
        /// Output written before the violation.
        stdout: String,
        /// Error output written before the violation.
        stderr: String,
    },
    /// The client cancelled the request (`notifications/cancelled`); the
    /// guest was stopped and its slot freed.
    Cancelled {
        /// How long it ran before the cancellation, in milliseconds.
        elapsed_ms: f64,
        /// Output written before the cancellation.
        stdout: String,
        /// Error output written before the cancellation.
        stderr: String,
    },
    /// Every execution slot is taken and the queue is full; nothing ran.
    Busy {
        /// Why it was refused, with the retry hint, for the agent.
        message: String,
        /// When a retry is likely to be admitted.
        retry_after_ms: u64,
    },
}

impl ExecutionResult {
    /// The `status` tag of this result, as metrics count it.
    pub fn status(&self) -> Status {
        match self {
            ExecutionResult::Success { .. } => Status::Success,
            ExecutionResult::Error { .. } => Status::Error,
            ExecutionResult::Timeout { .. } => Status::Timeout,
            ExecutionResult::ResourceLimit { .. } => Status::ResourceLimit,
            ExecutionResult::SecurityViolation { .. } => Status::SecurityViolation,
            ExecutionResult::Cancelled { .. } => Status::Cancelled,
            ExecutionResult::Busy { .. } => Status::Busy,
        }
    }

    /// A short human-readable summary for the text block.
    pub fn summary(&self) -> String {
        match self {
            ExecutionResult::Success { output, execution_time_ms, .. } => match output {
                Some(v) => format!("success in {execution_time_ms:.2} ms: {}", truncate(&v.to_string(), 2000)),
                None => format!("success in {execution_time_ms:.2} ms (returned undefined)"),
            },
            ExecutionResult::Error { error_type, message, line, .. } => match line {
                Some(l) => format!("{error_type:?} error at line {l}: {message}"),
                None => format!("{error_type:?} error: {message}"),
            },
            ExecutionResult::Timeout { elapsed_ms, .. } => format!("timed out after {elapsed_ms:.0} ms"),
            ExecutionResult::ResourceLimit { message, .. } => format!("resource limit: {message}"),
            ExecutionResult::SecurityViolation { reason, .. } => format!("security violation: {reason}"),
            ExecutionResult::Cancelled { elapsed_ms, .. } => format!("cancelled by the client after {elapsed_ms:.0} ms"),
            ExecutionResult::Busy { message, .. } => message.clone(),
        }
    }
}

/// The longest error message a result carries; the rest is cut with a
/// marker. A thrown value is the guest's to size, and it appears in the
/// reply more than once, so it is bounded like output.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] with a marker saying how long
/// it was.
pub fn bounded_message(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    format!("{} [message truncated: {total} bytes in all]", truncate(&message, MAX_MESSAGE_BYTES).trim_end_matches('…'))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
