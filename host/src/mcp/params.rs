//! Tool parameters whose deserialisation errors are tool results.
//!
//! rmcp's own `Parameters<T>` turns a bad argument into a JSON-RPC
//! protocol error, which MCP clients show opaquely. MCP wants a tool's
//! input error to be an `isError` result the agent can read and correct,
//! so this extractor keeps the error for the tool to return. It has the
//! same name so rmcp's `#[tool]` macro derives the input schema from `T`.

use std::borrow::Cow;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// The arguments of a tool call: `Ok(T)`, or why they do not fit `T`.
pub struct Parameters<T>(pub Result<T, String>);

impl<T: JsonSchema> JsonSchema for Parameters<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<T: DeserializeOwned> Parameters<T> {
    /// The arguments `args` of a call to `tool`.
    pub fn parse(tool: &str, args: serde_json::Map<String, serde_json::Value>) -> Self {
        let parsed = serde_json::from_value(serde_json::Value::Object(args))
            .map_err(|e| format!("invalid arguments for `{tool}`: {e}"));
        Parameters(parsed)
    }
}

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, rmcp::ErrorData> {
        let args = context.arguments.take().unwrap_or_default();
        Ok(Self::parse(&context.name, args))
    }
}

/// An `isError` result with one text block.
pub fn input_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// Unwraps parameters or returns their error as an `isError` result.
macro_rules! params_or_return {
    ($p:expr) => {
        match $p.0 {
            Ok(v) => v,
            Err(e) => return Ok($crate::mcp::params::input_error(e)),
        }
    };
}
pub(crate) use params_or_return;
