//! `JSON.parse` and `JSON.stringify`, bounded in depth.
//!
//! javy's fast versions (simd-json and serde_json behind QuickJS values)
//! recurse once per nesting level on the guest's stack, and nothing there
//! checks QuickJS's stack limit: an object nested 2,000 levels deep in
//! `JSON.stringify`, or a text of 4,400 nested arrays in `JSON.parse`,
//! overran the 1 MiB stack and trapped the guest ("out of bounds memory
//! access"), uncatchable by the script. These wrappers keep the fast paths
//! and refuse, with a `RangeError` the script can catch, a text or value
//! nested deeper than [`MAX_JSON_DEPTH`]:
//!
//! - `JSON.parse` scans the text (once, without recursion) before parsing
//!   it, on every path (with a reviver too, which QuickJS's own parser
//!   serves);
//! - `JSON.stringify(value)` is javy's fast path with a serde_json formatter
//!   that counts the arrays and objects it is inside and stops past the
//!   bound;
//! - `JSON.stringify` with a replacer or an indent is QuickJS's own; the
//!   prelude (`engine.rs`) walks its value first, without recursion, and
//!   refuses it past the bound. (A replacer or `toJSON` that builds a
//!   deeper value as it goes is not seen by that walk.)
//!
//! Not covered: deep recursion in the script's own functions, and in
//! QuickJS's other natives (`String` of a deeply nested array). QuickJS
//! checks its stack limit there, but its build for WASI turns that check
//! off (`update_stack_limit` in quickjs.c), so the host's wasm stack limit
//! stops the script: the execution fails with `RangeError: Maximum call
//! stack size exceeded (wasm stack exhausted)`, which the script cannot
//! catch, and the server goes on.

use std::cell::Cell;
use std::io;

use javy::quickjs::convert::Coerced;
use javy::quickjs::function::{Rest, This};
use javy::quickjs::{Ctx, Error, Exception, FromJs as _, Function, Object, Result, String as JsString, Value};

/// How deep `JSON.parse` and `JSON.stringify` nest. The fast stringify
/// takes ≈ 530 bytes of the guest's stack per level and parse ≈ 240, so
/// 1,000 levels fit beside the stack QuickJS itself may use.
pub const MAX_JSON_DEPTH: usize = 1000;

/// Replaces `JSON.parse` and `JSON.stringify` with the bounded ones.
pub(crate) fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let json: Object = ctx.globals().get("JSON")?;
    let fast_parse: Function = json.get("parse")?;
    let parse = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| parse(&ctx, &fast_parse, args))?
        .with_name("parse")?;
    parse.set_length(2)?;
    let fast_stringify: Function = json.get("stringify")?;
    let stringify =
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| stringify(&ctx, &fast_stringify, args))?
            .with_name("stringify")?;
    stringify.set_length(3)?;
    json.set("parse", parse)?;
    json.set("stringify", stringify)?;
    Ok(())
}

fn too_deep(ctx: &Ctx<'_>, what: &str) -> Error {
    Exception::throw_range(ctx, &format!("{what} nests deeper than {MAX_JSON_DEPTH} levels"))
}

/// Whether the JSON text `bytes` opens more than `max` arrays or objects
/// at once (brackets inside strings do not count).
pub fn nests_deeper(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn parse<'js>(ctx: &Ctx<'js>, fast: &Function<'js>, args: Rest<Value<'js>>) -> Result<Value<'js>> {
    let mut args = args.0;
    if let Some(text) = args.first_mut() {
        // Numbers and null are returned as they are, and symbols and
        // undefined refused, by the fast parse; anything else is read as
        // its string (once: the fast parse gets that string).
        if !(text.is_number() || text.is_null() || text.is_symbol() || text.is_undefined()) {
            let Coerced(string) = Coerced::<JsString<'js>>::from_js(ctx, text.clone())?;
            let bytes = string.clone().to_cstring()?;
            if nests_deeper(bytes.as_ref(), MAX_JSON_DEPTH) {
                return Err(too_deep(ctx, "JSON.parse: the text"));
            }
            *text = string.into_value();
        }
    }
    fast.call((Rest(args),))
}

fn stringify<'js>(ctx: &Ctx<'js>, fast: &Function<'js>, args: Rest<Value<'js>>) -> Result<Value<'js>> {
    // A replacer or an indent: QuickJS's own, which checks its stack.
    if args.0.len() != 1 {
        return fast.call((Rest(args.0),));
    }
    let arg = args.0[0].clone();
    let value = match arg.as_object().map(|o| o.get::<_, Value>("toJSON")).transpose()? {
        Some(f) if f.is_function() => match f.into_function() {
            Some(f) => f.call((This(arg.clone()), ""))?,
            None => arg,
        },
        _ => arg,
    };
    if value.is_function() || value.is_undefined() || value.is_symbol() {
        return Ok(Value::new_undefined(ctx.clone()));
    }
    let exceeded = Cell::new(false);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Bounded { depth: 0, exceeded: &exceeded });
    let mut deserializer = rquickjs_serde::Deserializer::from(value).with_strict();
    match serde_transcode::transcode(&mut deserializer, &mut serializer) {
        Ok(()) => {
            let text = String::from_utf8(out).map_err(|e| Exception::throw_message(ctx, &e.to_string()))?;
            Ok(JsString::from_str(ctx.clone(), &text)?.into_value())
        }
        Err(_) if exceeded.get() => Err(too_deep(ctx, "JSON.stringify: the value")),
        // An exception thrown while reading the value (a cycle, a BigInt, a
        // throwing toJSON or getter) is pending in the context: it
        // propagates as it is.
        Err(_) if ctx.has_exception() => Err(Error::Exception),
        Err(e) => Err(Exception::throw_message(ctx, &e.to_string())),
    }
}

/// serde_json's compact output, counting the arrays and objects it is
/// inside and failing past [`MAX_JSON_DEPTH`] before going deeper.
struct Bounded<'a> {
    depth: usize,
    exceeded: &'a Cell<bool>,
}

impl Bounded<'_> {
    fn enter(&mut self) -> io::Result<()> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            self.exceeded.set(true);
            return Err(io::Error::other("too deep"));
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for Bounded<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.enter()?;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        writer.write_all(b"]")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.enter()?;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        writer.write_all(b"}")
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_JSON_DEPTH, nests_deeper};
    use crate::Outcome;
    use crate::engine::run;

    fn no_tools(_: &str, _: &str, _: &str) -> std::result::Result<String, crate::ToolFailure> {
        Err(crate::ToolFailure::Thrown { name: "Error", message: "no tools here".into() })
    }

    /// Runs `source` and gives its JSON result.
    fn ok(source: &str) -> String {
        match run(no_tools, source, r#"{"task":"","input":null}"#) {
            Outcome::Success(Some(json)) => json,
            other => panic!("{source}: {other:?}"),
        }
    }

    const CAUGHT: &str = "catch (e) { return e.name + ': ' + e.message }";

    #[test]
    fn deep_values_and_texts_are_a_catchable_range_error() {
        let cases = [
            "let o = {}; for (let i = 0; i < 100000; i++) o = {a: o}; try { JSON.stringify(o); return 'no error' }",
            "let o = []; for (let i = 0; i < 100000; i++) o = [o]; try { JSON.stringify(o); return 'no error' }",
            "let s = '['.repeat(100000) + ']'.repeat(100000); try { JSON.parse(s); return 'parsed' }",
            "let s = '{\"a\":'.repeat(5000) + '1' + '}'.repeat(5000); try { JSON.parse(s); return 'parsed' }",
            // With an indent or a replacer, QuickJS's own stringify: the value is walked first.
            "let o = []; for (let i = 0; i < 100000; i++) o = [o]; try { JSON.stringify(o, null, 1); return 'no error' }",
            "let o = {}; for (let i = 0; i < 100000; i++) o = {a: o}; try { JSON.stringify(o, (k, v) => v); return 'no error' }",
            // A reviver is QuickJS's own parser: the text is checked first all the same.
            "let s = '['.repeat(100000) + ']'.repeat(100000); try { JSON.parse(s, (k, v) => v); return 'parsed' }",
        ];
        for case in cases {
            let got = ok(&format!("{case} {CAUGHT}"));
            assert!(got.contains("RangeError") && got.contains("1000 levels"), "{case}: {got}");
        }
        // The script goes on after catching it.
        assert_eq!(ok("let o = {}; for (let i = 0; i < 5000; i++) o = {a: o}; let n = 0; try { JSON.stringify(o) } catch (e) { n = e instanceof RangeError } return [n, JSON.stringify({ok: 1})]"), r#"[true,"{\"ok\":1}"]"#);
    }

    #[test]
    fn at_the_bound_and_below_json_means_what_it_meant() {
        let depth = MAX_JSON_DEPTH;
        let s = ok(&format!("let o = 1; for (let i = 0; i < {depth}; i++) o = [o]; const t = JSON.stringify(o); return [t.length, JSON.parse(t).length]"));
        assert_eq!(s, format!("[{},1]", 2 * depth + 1));
        let cases = [
            ("JSON.stringify({a: [1, 'x', null, true], b: {c: undefined}, d: () => 1})", r#"{"a":[1,"x",null,true],"b":{}}"#),
            ("JSON.stringify({toJSON() { return {t: 1} }})", r#"{"t":1}"#),
            ("String(JSON.stringify(undefined))", "undefined"),
            ("JSON.stringify({a: 1}, null, 1)", "{\n \"a\": 1\n}"),
            ("JSON.stringify({a: 1, b: 2}, ['b'])", r#"{"b":2}"#),
            ("JSON.parse('[1, {\"a\": \"]]]\"}]')[1].a", "]]]"),
            ("JSON.parse('{\"a\": 2}', (k, v) => k === 'a' ? v * 2 : v).a", "4"),
            ("JSON.parse(5)", "5"),
            ("JSON.stringify({a: [1]}, null, '\\t')", "{\n\t\"a\": [\n\t\t1\n\t]\n}"),
            ("(() => { let a = {}; for (let i = 1; i < 200; i++) a = {a}; return JSON.stringify(a, null, 0).length })()", "1196"),
            ("JSON.parse.length + ',' + JSON.stringify.length + ',' + JSON.parse.name + ',' + JSON.stringify.name", "2,3,parse,stringify"),
        ];
        for (expr, want) in cases {
            let got: serde_json::Value = serde_json::from_str(&ok(&format!("return {expr}"))).unwrap();
            let got = match got { serde_json::Value::String(s) => s, other => other.to_string() };
            assert_eq!(got, want, "{expr}");
        }
        for (expr, name) in [
            ("let a = {}; a.a = a; JSON.stringify(a)", "TypeError"),
            ("JSON.parse('{')", "SyntaxError"),
            ("JSON.stringify({a: 1n})", "Error"),
            // The script's own exception, pending when the reading stopped.
            ("JSON.stringify({get a() { throw new RangeError('mine') }})", "RangeError: mine"),
            ("JSON.stringify({a: {toJSON() { throw new URIError('own') }}})", "URIError: own"),
        ] {
            let got = ok(&format!("try {{ {expr}; return 'no error' }} {CAUGHT}"));
            assert!(got.contains(name), "{expr}: {got}");
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nests_deeper(b"[[1]]", 2));
        assert!(nests_deeper(b"[[[1]]]", 2));
        assert!(!nests_deeper(br#"{"a": "[[[[[[", "b": [1, {"c": 2}]}"#, 3));
        assert!(!nests_deeper(br#"["\"[[[[[", 1]"#, 1));
        assert!(nests_deeper(br#"{"a\\": [[1]]}"#, 2));
        assert!(!nests_deeper(b"[][][][]", 1));
    }
}
