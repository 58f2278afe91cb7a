//! The QuickJS (javy) engine behind code mode and plugins, shared by the
//! components that export it: `js-runtime` (world `agent-runtime`), and
//! the plugin templates `js-plugin` (`tool-plugin`) and `js-plugin-pure`
//! (`pure-plugin`). It has no WIT types of its own; each component maps
//! [`Outcome`] and [`JsError`] onto its world's.
//!
//! ```ignore
//! // In a component's `run` export:
//! let outcome = js_interpreter::engine::run(call_tool, "return 1 + 1", r#"{"task":"","input":null}"#);
//! assert_eq!(outcome, js_interpreter::Outcome::Success(Some("2".into())));
//! ```

pub mod engine;
pub mod errors;
pub mod fence;
mod glue;
pub mod json;
pub mod plugin;

pub use engine::{CallTool, ToolFailure};
pub use errors::JsError;

/// How a script ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The settled result as JSON text; `None` for `undefined`.
    Success(Option<String>),
    /// The script does not compile.
    SyntaxError(JsError),
    /// The script threw, or its promise rejected.
    RuntimeError(JsError),
    /// A tool call was refused during the run (the first refusal's reason),
    /// whether or not the script caught the error it threw.
    Denied(String),
}
