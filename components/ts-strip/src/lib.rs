//! Agent TypeScript to JavaScript, with swc's fast type stripper
//! (`swc_ts_fast_strip`, the engine behind Node's `--experimental-strip-types`),
//! compiled into a component so untrusted source is parsed in the sandbox.
//!
//! ```
//! let js = ts_strip::strip("const n: number = 1;\nreturn n as number;").unwrap();
//! assert_eq!(js, "const n         = 1;\nreturn n          ;");
//! let err = ts_strip::strip("const = ;").unwrap_err();
//! assert_eq!(err[0].line, 1);
//! ```

use std::sync::{Arc, Mutex};

use swc_common::errors::{DiagnosticBuilder, Emitter, Handler};
use swc_common::sync::Lrc;
use swc_common::{GLOBALS, Globals, SourceMap};
use swc_ts_fast_strip::{ErrorCode, Mode, Options, operate};

/// A problem at a 1-based line and column of the caller's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in the parser's words.
    pub message: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The code is a function body; wrapping it lets `return` and `await`
/// parse. The prefix shares line 1 so lines stay the caller's.
const PREFIX: &str = "(async function () { ";
const SUFFIX: &str = "\n})";

#[derive(Clone)]
struct Collect {
    cm: Lrc<SourceMap>,
    out: Arc<Mutex<Vec<Diagnostic>>>,
}

impl Emitter for Collect {
    fn emit(&mut self, db: &mut DiagnosticBuilder<'_>) {
        let (line, column) = match db.span.primary_span() {
            Some(span) => {
                let at = self.cm.lookup_char_pos(span.lo);
                let col = at.col_display as u32 + 1;
                // Columns on line 1 are shifted by the wrapper.
                let col = if at.line == 1 { col.saturating_sub(PREFIX.len() as u32).max(1) } else { col };
                (at.line as u32, col)
            }
            None => (1, 1),
        };
        if let Ok(mut out) = self.out.lock() {
            out.push(Diagnostic { message: db.message(), line, column });
        }
    }
}

fn run(source: String, mode: Mode) -> Result<String, (ErrorCode, Vec<Diagnostic>)> {
    let cm: Lrc<SourceMap> = Default::default();
    let collect = Collect { cm: cm.clone(), out: Arc::default() };
    let handler = Handler::with_emitter(true, false, Box::new(collect.clone()));
    let options = Options { module: Some(false), mode, ..Default::default() };
    let result = GLOBALS.set(&Globals::default(), || operate(&cm, &handler, source, options));
    let diagnostics = collect.out.lock().map(|d| d.clone()).unwrap_or_default();
    result.map(|o| o.code).map_err(|e| {
        let mut d = diagnostics;
        if d.is_empty() {
            d.push(Diagnostic { message: e.message, line: 1, column: 1 });
        }
        (e.code, d)
    })
}

/// Strips the types from `body`, a function body.
pub fn strip(body: &str) -> Result<String, Vec<Diagnostic>> {
    let wrapped = format!("{PREFIX}{body}{SUFFIX}");
    match run(wrapped, Mode::StripOnly) {
        Ok(code) => match code.strip_prefix(PREFIX).and_then(|c| c.strip_suffix(SUFFIX)) {
            Some(inner) => Ok(inner.to_string()),
            None => Err(vec![Diagnostic { message: "the stripped code lost its wrapper".into(), line: 1, column: 1 }]),
        },
        // enum, namespaces with values, parameter properties: transform.
        Err((ErrorCode::UnsupportedSyntax, _)) => {
            let wrapped = format!("{PREFIX}{body}{SUFFIX}()");
            run(wrapped, Mode::Transform).map(|code| format!("return await {code}")).map_err(|(_, d)| d)
        }
        Err((_, d)) => Err(d),
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI export glue
mod component {
    wit_bindgen::generate!({
        path: "../../wit/typescript/0.1.0",
        world: "type-stripper",
    });

    use exports::memory_mcp::typescript::stripper::{Diagnostic, Guest};

    struct Component;

    impl Guest for Component {
        fn strip(source: String) -> Result<String, Vec<Diagnostic>> {
            super::strip(&source).map_err(|ds| {
                ds.into_iter().map(|d| Diagnostic { message: d.message, line: d.line, column: d.column }).collect()
            })
        }
    }

    export!(Component);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_blanked_in_place() {
        let src = "interface P { x: number }\nconst p: P = { x: 1 };\nconst f = <T,>(v: T): T => v;\nreturn f<number>(p.x);";
        let js = strip(src).unwrap();
        assert_eq!(js.lines().count(), 4);
        assert!(!js.contains("interface") && !js.contains(": P") && !js.contains("<number>"), "{js}");
        assert!(js.contains("return f"), "{js}");
    }

    #[test]
    fn syntax_errors_point_at_the_callers_line() {
        let err = strip("const a = 1;\nconst b: = 2;").unwrap_err();
        assert_eq!(err[0].line, 2, "{err:?}");
        assert!(!err[0].message.is_empty());
    }

    #[test]
    fn enums_are_transformed() {
        let js = strip("enum Color { Red, Green }\nreturn Color.Green;").unwrap();
        assert!(js.starts_with("return await "), "{js}");
        assert!(js.contains("Green"), "{js}");
    }
}
