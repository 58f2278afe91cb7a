//! How an agent's source becomes the body of a function: the fence that
//! keeps it inside that function ([`wrap`]), the file name QuickJS reports
//! for it, and where its line-1 columns lie. The engine compiles what
//! [`wrap`] makes; errors map positions back through [`line1_offset`].

/// File name QuickJS reports in stacks for the agent's code.
pub const AGENT_FILE: &str = "agent.js";

/// `source` as the body of an async function expression, fenced so that
/// it cannot end that function early.
///
/// The body sits in a block labelled with a name derived from the blake3
/// of `source`, and the block ends with `break` to that label. QuickJS's
/// parser only accepts a `break LABEL` inside a statement labelled LABEL
/// *in the same function*, and `source` cannot spell the label (it would
/// have to contain its own hash). So the text parses only if the `break`
/// after the source is still inside the wrapper function: a source that
/// closes the wrapper (`}); STMT; (async function () {`) is a syntax
/// error, and the script is exactly one function expression, whose
/// evaluation runs none of `source`. The check is the engine's own parser
/// on the very text that runs, so no second parser can disagree with it.
///
/// A leading `"use strict"` directive keeps its meaning (it is repeated
/// where a directive may stand). The closing lines sit after a line break
/// so a trailing `//` comment in the source cannot swallow them; the
/// opening shares line 1 so QuickJS line numbers are the caller's (line-1
/// columns are corrected by [`body_column_offset`]).
pub fn wrap(source: &str) -> String {
    let label = fence_label(source);
    format!("{}{source}\nbreak {label}; }}\n}})", prefix(source, &label))
}

fn prefix(source: &str, label: &str) -> String {
    let strict = if strict_directive(source) { "\"use strict\"; " } else { "" };
    format!("(async function () {{ {strict}{label}: {{ ")
}

/// The label fencing `source`: unguessable without `source` itself.
fn fence_label(source: &str) -> String {
    let hash = blake3::hash(source.as_bytes());
    format!("__memory_mcp_body_{}", &hash.to_hex()[..32])
}

/// Whether `source` opens with a `"use strict"` directive.
fn strict_directive(source: &str) -> bool {
    let s = source.trim_start();
    ["\"use strict\"", "'use strict'"].iter().any(|d| {
        s.strip_prefix(d).is_some_and(|rest| {
            let rest = rest.trim_start_matches([' ', '\t']);
            rest.is_empty() || rest.starts_with([';', '\n', '\r', '}'])
        })
    })
}

/// How many characters [`wrap`] puts before `source` on line 1.
pub fn body_column_offset(source: &str) -> u32 {
    u32::try_from(prefix(source, &fence_label(source)).chars().count()).unwrap_or(0)
}

thread_local! {
    /// [`body_column_offset`] of the source compiled last; error columns on
    /// line 1 are reported without it.
    static COLUMN_OFFSET: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The column offset of line 1 in the source compiled last.
pub fn line1_offset() -> u32 {
    COLUMN_OFFSET.with(|c| c.get())
}

/// Records that `source` is compiled next (see [`line1_offset`]).
pub(crate) fn set_line1_offset(source: &str) {
    COLUMN_OFFSET.with(|c| c.set(body_column_offset(source)));
}

#[cfg(test)]
mod tests {
    //! The fence around a script, against the engine's own parser: every
    //! way out of the wrapper is a syntax error and runs nothing, and
    //! ordinary bodies mean what they meant unfenced.

    use super::*;
    use crate::Outcome;
    use crate::engine::{ToolFailure, compile_function, run, with_context};

    fn no_tools(_: &str, _: &str, _: &str) -> Result<String, ToolFailure> {
        Err(ToolFailure::Thrown { name: "Error", message: "no tools here".into() })
    }

    const CTX: &str = r#"{"task":"t","input":null}"#;

    fn run_ok(source: &str) -> String {
        match run(no_tools, source, CTX) {
            Outcome::Success(Some(json)) => json,
            other => panic!("{source:?}: {other:?}"),
        }
    }

    /// Compiles `source` as a plugin body and says whether it was refused,
    /// and whether any of it ran (it sets `globalThis.ran`).
    fn compile_escape(source: &str) -> (bool, bool) {
        with_context(no_tools, |ctx| {
            ctx.globals().set("ran", false).expect("set");
            let refused = compile_function(ctx, source).is_err();
            let ran: bool = ctx.globals().get("ran").expect("get");
            (refused, ran)
        })
    }

    fn escapes() -> Vec<String> {
        let guessed = fence_label("return 1");
        let mut v: Vec<String> = [
            "}); ran = true; (async function () {",
            "}), ran = true, (async function () {",
            "}); ran = true; ({a: 1",
            "}, ran = true, {a: 1",
            "} }); ran = true; (function () { {",
            "} }) + (ran = true, 0) + (function () { {",
            "} }); ran = true; (async function () { { // trailing",
            "} }); ran = true; (function () { { /*",
            "} }); ran = true; (function () { { `",
            "} }); ran = true; /",
            "} }); ran = true; <!--",
            "} });\n--> ran = true; (function () { {",
            "// comment\u{2028}} }); ran = true; (function () { {",
            "// comment\u{2029}} }); ran = true; (function () { {",
            "\"use strict\"; } }); ran = true; (function () { {",
            "} }); while (true) {} (function () { {",
            "} }); ran = true; (async function () { LBL: {",
            "} }); ran = true; (async function () { __memory_mcp_body_0: {",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A label guessed from another source, spelled plainly and escaped.
        v.push(format!("}} }}); ran = true; (function () {{ {guessed}: {{"));
        let escaped: String = guessed.chars().map(|c| format!("\\u{{{:x}}}", c as u32)).collect();
        v.push(format!("}} }}); ran = true; (function () {{ {escaped}: {{"));
        v
    }

    #[test]
    fn every_escape_is_refused_and_runs_nothing() {
        for source in escapes() {
            let (refused, ran) = compile_escape(&source);
            assert!(refused, "compiled: {source:?}");
            assert!(!ran, "ran at compile: {source:?}");
            match run(no_tools, &source, CTX) {
                Outcome::SyntaxError(e) => assert!(e.message.starts_with("SyntaxError"), "{source:?}: {e:?}"),
                other => panic!("{source:?} ran: {other:?}"),
            }
        }
    }

    #[test]
    fn a_source_that_closes_its_function_is_told_so() {
        for source in ["}); ran = true; (async function () {", "} }); ran = true; (function () { {"] {
            match run(no_tools, source, CTX) {
                Outcome::SyntaxError(e) => assert!(e.message.contains("close"), "{source:?}: {e:?}"),
                other => panic!("{source:?}: {other:?}"),
            }
        }
        // An ordinary syntax error keeps its own message.
        match run(no_tools, "return f(1));", CTX) {
            Outcome::SyntaxError(e) => assert!(!e.message.contains("close"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_compiled_body_has_not_run() {
        let (refused, ran) = compile_escape("ran = true; return 1");
        assert!(!refused && !ran);
        let (refused, ran) = compile_escape("while (true) {}");
        assert!(!refused && !ran);
    }

    #[test]
    fn ordinary_bodies_keep_their_meaning() {
        let cases = [
            ("return 1 + 1", "2"),
            ("return f(); function f() { return 3 }", "3"),
            ("var x = 1; { let x = 2 } return x", "1"),
            ("L: { break L } return 'labels'", "\"labels\""),
            ("for (;;) { break } return arguments.length", "0"),
            ("return await Promise.resolve(4)", "4"),
            ("\"use strict\"; return (function () { return this })() === undefined", "true"),
            ("return (function () { return this })() === undefined", "false"),
            ("return context.task // trailing comment", "\"t\""),
            ("let y = 5\nreturn y", "5"),
            ("return `}) ; (`", "\"}) ; (\""),
            ("return '\\u{7d})'", "\"})\""),
        ];
        for (source, want) in cases {
            assert_eq!(run_ok(source), want, "{source:?}");
        }
        assert!(matches!(run(no_tools, "", CTX), Outcome::Success(None)));
    }

    #[test]
    fn top_level_declarations_follow_block_rules() {
        // The one meaning the fence changes: a `var` and a function of one
        // name clash, as they do in any block.
        match run(no_tools, "var f = 1; function f() {} return typeof f", CTX) {
            Outcome::SyntaxError(e) => assert!(e.message.contains("block rules"), "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(run_ok("function g() { return 1 } function g() { return 2 } return g()"), "2");
    }

    #[test]
    fn unbalanced_sources_say_so_at_their_last_line() {
        for source in ["if (x) {", "return 1 }", "return (1"] {
            match run(no_tools, source, CTX) {
                Outcome::SyntaxError(e) => {
                    assert!(e.message.contains("not a function body"), "{source:?}: {e:?}");
                    assert_eq!(e.line, Some(1), "{source:?}");
                }
                other => panic!("{source:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn line_one_columns_are_the_callers() {
        match run(no_tools, "  null.x", CTX) {
            Outcome::RuntimeError(e) => assert_eq!((e.line, e.column.map(|c| c < 10)), (Some(1), Some(true)), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
}
