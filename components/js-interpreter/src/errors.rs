//! Turning QuickJS exceptions into [`JsError`] (the WIT `js-error` record's
//! fields), with the line and column in the agent's own source where
//! QuickJS knows them.

use javy::quickjs::{Ctx, Object, Value};

use crate::fence::AGENT_FILE;

/// A thrown error, as the caller sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JsError {
    /// `Name: message`.
    pub message: String,
    /// 1-based line in the caller's source, when known.
    pub line: Option<u32>,
    /// 1-based column in the caller's source, when known.
    pub column: Option<u32>,
    /// The JavaScript stack, when there is one.
    pub stack: Option<String>,
}

/// An error with only a message.
pub fn plain(message: &str) -> JsError {
    JsError {
        message: message.to_string(),
        line: None,
        column: None,
        stack: None,
    }
}

/// The pending exception after a failed rquickjs call.
pub fn from_caught(ctx: &Ctx<'_>, e: javy::quickjs::Error) -> JsError {
    if e.is_exception() {
        from_value(ctx, ctx.catch())
    } else {
        plain(&format!("InternalError: {e}"))
    }
}

/// A thrown value: an `Error` object (name, message, stack, position) or
/// anything else, shown as `Uncaught <value>`.
pub fn from_value<'js>(ctx: &Ctx<'js>, thrown: Value<'js>) -> JsError {
    let Some(obj) = thrown.as_object().filter(|_| thrown.is_error()) else {
        return plain(&format!("Uncaught {}", display(ctx, thrown)));
    };
    let name = string_prop(obj, "name").unwrap_or_else(|| "Error".to_string());
    let message = string_prop(obj, "message").unwrap_or_default();
    let stack = string_prop(obj, "stack").filter(|s| !s.is_empty());
    let (mut line, mut column) = stack.as_deref().map(position_in_stack).unwrap_or_default();
    if line.is_none() {
        line = number_prop(obj, "lineNumber");
        column = number_prop(obj, "columnNumber");
    }
    // Line 1 starts with the wrapper's opening (fence::wrap).
    // (A column inside that opening means QuickJS did not know it.)
    if line == Some(1) {
        let offset = crate::fence::line1_offset();
        column = column.filter(|c| *c > offset).map(|c| c - offset);
    }
    let message = if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    };
    JsError {
        message,
        line,
        column,
        stack,
    }
}

fn display<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if let Some(s) = v.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    match ctx.json_stringify(v) {
        Ok(Some(s)) => s.to_string().unwrap_or_else(|_| "<value>".into()),
        _ => "<value>".into(),
    }
}

fn string_prop(obj: &Object<'_>, key: &str) -> Option<String> {
    obj.get::<_, Option<String>>(key).ok().flatten()
}

fn number_prop(obj: &Object<'_>, key: &str) -> Option<u32> {
    obj.get::<_, Option<f64>>(key)
        .ok()
        .flatten()
        .filter(|n| n.is_finite() && *n >= 1.0)
        .map(|n| n as u32)
}

/// The first `agent.js:LINE[:COL]` frame in a QuickJS stack.
pub fn position_in_stack(stack: &str) -> (Option<u32>, Option<u32>) {
    let marker = format!("{AGENT_FILE}:");
    let Some(at) = stack.find(&marker) else {
        return (None, None);
    };
    let rest = &stack[at + marker.len()..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let line = parts.next().and_then(|s| s.parse().ok());
    let column = if rest.len() > 1 {
        let after_line = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        after_line
            .strip_prefix(':')
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
    } else {
        None
    };
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::position_in_stack;

    #[test]
    fn finds_line_and_column() {
        assert_eq!(
            position_in_stack("    at f (agent.js:3:7)\n    at <eval> (agent.js:9)\n"),
            (Some(3), Some(7))
        );
        assert_eq!(position_in_stack("    at agent.js:12\n"), (Some(12), None));
        assert_eq!(position_in_stack("no frames"), (None, None));
    }
}
