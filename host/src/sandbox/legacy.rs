//! `memory-mcp:tool-call@0.1.0`, adapted onto 0.2.0 in this one place, so
//! plugins saved by earlier builds (and third-party components built
//! against 0.1.0) keep loading and behaving as they did:
//! - its `tools` import is linked beside 0.2.0's ([`add_to_linker`]),
//!   served by the same [`ToolsView`], so both versions share one policy,
//!   one rate limit and one audit;
//! - its `plugin` export's `run-outcome` becomes 0.2.0's ([`outcome`]).
//!
//! 0.1.0 has no `denied` outcome: a plugin built on its `pure-plugin` world
//! (no tools import, so the host never sees the refusal) reports a refused
//! call as a `runtime-error` named `SecurityViolation`, the JS error name
//! its contract documents (`js-error.message` is `Name: message`). That
//! name is read here, for 0.1.0 components only; 0.2.0 reports the typed
//! `denied` case instead.

use wasmtime::component::{HasData, Linker};

use super::tools::ToolsView;
use crate::world::tool_call_0_1_0::{runner as v1, tools as v1_tools};
use crate::world::{runner, tools};

/// The JS error name a 0.1.0 plugin gives a refused tool call.
const V1_DENIED_NAME: &str = "SecurityViolation";

struct HasTools;

impl HasData for HasTools {
    type Data<'a> = ToolsView<'a>;
}

/// Links the 0.1.0 `tools` interface, reading its state through `get`.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> ToolsView<'_>) -> wasmtime::Result<()> {
    v1_tools::add_to_linker::<T, HasTools>(linker, get)
}

impl v1_tools::Host for ToolsView<'_> {
    async fn call_tool(
        &mut self,
        server: String,
        name: String,
        arguments_json: String,
    ) -> wasmtime::Result<Result<String, v1_tools::ToolError>> {
        let answer = tools::Host::call_tool(self, server, name, arguments_json).await?;
        Ok(answer.map_err(|e| match e {
            tools::ToolError::Denied(m) => v1_tools::ToolError::Denied(m),
            tools::ToolError::Failed(m) => v1_tools::ToolError::Failed(m),
            tools::ToolError::Unavailable(m) => v1_tools::ToolError::Unavailable(m),
            tools::ToolError::InvalidArguments(m) => v1_tools::ToolError::InvalidArguments(m),
        }))
    }
}

/// A 0.1.0 `run-outcome` as 0.2.0's: a `runtime-error` named
/// `SecurityViolation` is the `denied` case (its message without the name).
pub fn outcome(o: v1::RunOutcome) -> runner::RunOutcome {
    let error = |e: v1::JsError| runner::JsError { message: e.message, line: e.line, column: e.column, stack: e.stack };
    match o {
        v1::RunOutcome::Success(json) => runner::RunOutcome::Success(json),
        v1::RunOutcome::SyntaxError(e) => runner::RunOutcome::SyntaxError(error(e)),
        v1::RunOutcome::RuntimeError(e) => match denied_reason(&e.message) {
            Some(reason) => runner::RunOutcome::Denied(reason.to_string()),
            None => runner::RunOutcome::RuntimeError(error(e)),
        },
    }
}

/// The reason of a 0.1.0 `SecurityViolation: reason` message.
fn denied_reason(message: &str) -> Option<&str> {
    let (name, reason) = message.split_once(':')?;
    (name == V1_DENIED_NAME).then(|| reason.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_error(message: &str) -> v1::RunOutcome {
        v1::RunOutcome::RuntimeError(v1::JsError { message: message.into(), line: Some(1), column: None, stack: None })
    }

    #[test]
    fn a_v1_security_violation_is_denied_and_other_errors_stay() {
        let denied = outcome(runtime_error("SecurityViolation: `x.y`: this plugin's policy grants no tool calls"));
        assert!(matches!(denied, runner::RunOutcome::Denied(r) if r == "`x.y`: this plugin's policy grants no tool calls"));
        for kept in ["TypeError: x is not a function", "SecurityViolationError: no", "Error: SecurityViolation: quoted"] {
            assert!(matches!(outcome(runtime_error(kept)), runner::RunOutcome::RuntimeError(e) if e.message == kept), "{kept}");
        }
        assert!(matches!(outcome(v1::RunOutcome::Success(None)), runner::RunOutcome::Success(None)));
    }
}
