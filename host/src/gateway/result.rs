//! What a tool call gives the sandbox: the structured result, else the
//! text, else the raw content blocks; an `isError` result is a failure
//! carrying the tool's own words.

use rmcp::model::CallToolResult;
use serde_json::Value;

use crate::sandbox::DispatchError;

/// The text blocks of a result, joined by newlines.
pub fn text_of(r: &CallToolResult) -> String {
    let parts: Vec<&str> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
    parts.join("\n")
}

/// Converts a tool's result into what `await tools.s.t(...)` resolves to,
/// or the error it throws.
pub fn into_value(r: CallToolResult) -> Result<Value, DispatchError> {
    let text = text_of(&r);
    if r.is_error == Some(true) {
        let message = match (text.is_empty(), &r.structured_content) {
            (false, _) => text,
            (true, Some(v)) => v.to_string(),
            (true, None) => "the tool reported an error without details".to_string(),
        };
        return Err(DispatchError::Failed(message));
    }
    if let Some(v) = r.structured_content {
        return Ok(v);
    }
    if !text.is_empty() || r.content.is_empty() {
        return Ok(Value::String(text));
    }
    serde_json::to_value(&r.content).map_err(|e| DispatchError::Unavailable(format!("unreadable tool result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;
    use serde_json::json;

    #[test]
    fn structured_then_text_then_error() {
        assert_eq!(into_value(CallToolResult::structured(json!({"a": 1}))).unwrap(), json!({"a": 1}));
        let t = CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("two")]);
        assert_eq!(into_value(t).unwrap(), json!("one\ntwo"));
        let e = CallToolResult::error(vec![ContentBlock::text("no such file")]);
        assert!(matches!(into_value(e), Err(DispatchError::Failed(m)) if m == "no such file"));
    }
}
