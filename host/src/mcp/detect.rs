//! TypeScript detection for `execute_agent_code` calls that leave out
//! `language` (issue 18, finding 7): the code runs as JavaScript; when it
//! does not parse as JavaScript, its types are erased by the TypeScript
//! stripper and it runs again. A syntax error stops the code before any of
//! it runs, so nothing (no tool call, no output) happens twice. When the
//! TypeScript attempt does not parse either, the JavaScript error is the
//! answer, with its JavaScript line and column.

use tokio_util::sync::CancellationToken;

use crate::sandbox::{CallSummary, ErrorType, Execution, ExecutionResult, Language, Sandbox};

/// How an execution went, and in which language it ran.
pub struct Ran {
    pub result: ExecutionResult,
    pub calls: CallSummary,
    /// The language that gave `result` (what `save_plugin` builds with).
    pub language: Language,
    /// TypeScript was detected: `language` was omitted and only the
    /// TypeScript reading parsed.
    pub detected: bool,
}

/// Runs `execution`; with `detect`, a JavaScript syntax error is retried
/// as TypeScript.
pub async fn run(sandbox: &Sandbox, execution: Execution, detect: bool, cancel: &CancellationToken) -> Ran {
    let retry = (detect && execution.language == Language::JavaScript)
        .then(|| Execution { language: Language::TypeScript, ..execution.clone() });
    let language = execution.language;
    let (result, calls) = sandbox.execute_traced(execution, cancel).await;
    let first = Ran { result, calls, language, detected: false };
    let Some(retry) = retry.filter(|_| is_syntax_error(&first.result)) else {
        return first;
    };
    let (result, calls) = sandbox.execute_traced(retry, cancel).await;
    if is_syntax_error(&result) {
        return first;
    }
    Ran { result, calls, language: Language::TypeScript, detected: true }
}

fn is_syntax_error(result: &ExecutionResult) -> bool {
    matches!(result, ExecutionResult::Error { error_type: ErrorType::Syntax, .. })
}
