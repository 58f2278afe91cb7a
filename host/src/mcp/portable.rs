//! Portable tool schemas: what every MCP client can read.
//!
//! schemars writes correct Draft 2020-12, but several clients trip on
//! parts of it: `$ref`/`$defs` they do not resolve, Rust-specific formats
//! (`uint32`, `double`) that strict validators reject, and `type: [X,
//! "null"]` for fields that are simply optional. [`portable`] rewrites a
//! schema, in one pass applied to every tool's input and output schema:
//!
//! - every `$ref` to `#/$defs/…` is replaced by the definition it names
//!   (its sibling keywords, such as a field's description, kept), and
//!   `$defs` is dropped, so each schema is self-contained;
//! - a `format` outside the standard vocabulary is removed (an integer
//!   keeps its `minimum`, which says what `uint` meant);
//! - `type: [X, "null"]` becomes `X`, `anyOf: [S, {type: null}]` becomes
//!   `S`, and `default: null` goes: absent is how such a field is left out;
//! - the schemas of a one-of of plain strings become one `enum`.

use serde_json::{Map, Value};

/// `format` values of the JSON Schema vocabulary (Draft 2020-12), which
/// any validator knows; others are dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// How deep references are followed; deeper (recursive) ones stay an
/// object without constraints.
const MAX_DEPTH: usize = 16;

/// Rewrites `schema` into its portable form (see the module docs).
pub fn portable(schema: &Map<String, Value>) -> Map<String, Value> {
    let defs = schema.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = rewrite(schema, &defs, 0);
    // Draft 2020-12 is MCP's default dialect: no `$schema` needed.
    out.remove("$schema");
    out
}

fn rewrite(schema: &Map<String, Value>, defs: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    // A reference: the definition, under the reference's own keywords.
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let def = target.strip_prefix("#/$defs/").and_then(|n| defs.get(n)).and_then(Value::as_object);
        match def {
            Some(def) if depth < MAX_DEPTH => out = rewrite(def, defs, depth + 1),
            _ => {
                out.insert("type".into(), Value::String("object".into()));
            }
        }
    }
    for (k, v) in schema {
        match k.as_str() {
            "$ref" | "$defs" => {}
            "format" => {
                if v.as_str().is_some_and(|f| STANDARD_FORMATS.contains(&f)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            "default" if v.is_null() => {}
            "type" => {
                out.insert(k.clone(), non_null_type(v));
            }
            "properties" | "patternProperties" => {
                let props = v
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), sub(s, defs, depth))).collect::<Map<_, _>>())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" | "contains" | "propertyNames" => {
                out.insert(k.clone(), sub(v, defs, depth));
            }
            "prefixItems" | "allOf" => {
                let list = v.as_array().map(|a| a.iter().map(|s| sub(s, defs, depth)).collect()).unwrap_or_default();
                out.insert(k.clone(), Value::Array(list));
            }
            "anyOf" | "oneOf" => {
                let branches: Vec<Value> = v
                    .as_array()
                    .map(|a| a.iter().filter(|s| !is_null_schema(s)).map(|s| sub(s, defs, depth)).collect())
                    .unwrap_or_default();
                merge_choice(&mut out, k, branches);
            }
            _ => {
                // A reference's own keywords win over its definition's.
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// A subschema, rewritten (booleans kept as they are).
fn sub(v: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(rewrite(m, defs, depth)),
        None => v.clone(),
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null") && v.as_object().is_some_and(|m| m.len() <= 2)
}

/// `[X, "null"]` → `X`; other types as they are.
fn non_null_type(v: &Value) -> Value {
    match v.as_array() {
        Some(types) => {
            let rest: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
            match rest.as_slice() {
                [one] => (*one).clone(),
                _ => Value::Array(rest.into_iter().cloned().collect()),
            }
        }
        None => v.clone(),
    }
}

/// Puts the branches of an `anyOf`/`oneOf` (null branches gone) into
/// `out`: one branch merges in; branches that are all plain strings
/// (`enum` or `const`) become one `enum`; others stay a choice.
fn merge_choice(out: &mut Map<String, Value>, key: &str, branches: Vec<Value>) {
    if let [Value::Object(only)] = branches.as_slice() {
        for (k, v) in only {
            // The outer schema's keywords (its description) win.
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        return;
    }
    let mut values = Vec::new();
    let all_strings = !branches.is_empty()
        && branches.iter().all(|b| {
            let is_string = b.get("type").and_then(Value::as_str) == Some("string");
            let consts: Option<Vec<Value>> = match (b.get("enum"), b.get("const")) {
                (Some(Value::Array(e)), None) => Some(e.clone()),
                (None, Some(c)) => Some(vec![c.clone()]),
                _ => None,
            };
            match consts {
                Some(c) if is_string && c.iter().all(Value::is_string) => {
                    values.extend(c);
                    true
                }
                _ => false,
            }
        });
    if all_strings {
        out.insert("type".into(), Value::String("string".into()));
        out.insert("enum".into(), Value::Array(values));
    } else {
        out.insert(key.to_string(), Value::Array(branches));
    }
}

/// Why `schema` is not portable, as JSON pointers with the reason; empty
/// when it is. The test of every tool's schemas uses it.
pub fn problems(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, "", &mut found);
    found
}

fn walk(v: &Value, at: &str, found: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{k}");
                match k.as_str() {
                    "$ref" | "$defs" | "definitions" => found.push(format!("{here}: not self-contained")),
                    "format" if !child.as_str().is_some_and(|f| STANDARD_FORMATS.contains(&f)) => {
                        found.push(format!("{here}: non-standard format {child}"))
                    }
                    "type" if child.is_array() => found.push(format!("{here}: type array {child}")),
                    "nullable" => found.push(format!("{here}: OpenAPI keyword")),
                    "properties" => {
                        for (name, s) in child.as_object().into_iter().flatten() {
                            if !s.is_object() {
                                found.push(format!("{here}/{name}: not a schema object"));
                            } else if s.get("type").is_none() && s.get("enum").is_none() && s.get("const").is_none() {
                                found.push(format!("{here}/{name}: no type"));
                            }
                        }
                    }
                    // Values, not schemas.
                    "default" | "const" | "enum" | "examples" | "required" => continue,
                    _ => {}
                }
                walk(child, &here, found);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refs_inline_formats_go_nullable_becomes_optional() {
        let schema = json!({
            "$defs": {
                "Kind": {"type": "string", "enum": ["a", "b"]},
                "Inner": {"type": "object", "properties": {"n": {"type": ["integer", "null"], "format": "uint64", "minimum": 0, "default": null}}}
            },
            "type": "object",
            "properties": {
                "kind": {"$ref": "#/$defs/Kind", "description": "which"},
                "maybe": {"anyOf": [{"$ref": "#/$defs/Kind"}, {"type": "null"}], "description": "optional kind"},
                "inner": {"$ref": "#/$defs/Inner"},
                "when": {"type": "string", "format": "date-time"},
                "lang": {"oneOf": [{"type": "string", "enum": ["js"]}, {"type": "string", "const": "ts", "description": "TS"}]}
            }
        });
        let out = Value::Object(portable(schema.as_object().unwrap()));
        assert_eq!(problems(&out), Vec::<String>::new(), "{out:#}");
        assert_eq!(out["properties"]["kind"], json!({"type": "string", "enum": ["a", "b"], "description": "which"}));
        assert_eq!(out["properties"]["maybe"]["enum"], json!(["a", "b"]));
        assert_eq!(out["properties"]["maybe"]["description"], "optional kind");
        assert_eq!(out["properties"]["inner"]["properties"]["n"], json!({"type": "integer", "minimum": 0}));
        assert_eq!(out["properties"]["when"]["format"], "date-time");
        assert_eq!(out["properties"]["lang"], json!({"type": "string", "enum": ["js", "ts"]}));
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn problems_name_what_is_not_portable() {
        let bad = json!({"$defs": {}, "properties": {"a": {"type": ["string", "null"]}, "b": {"format": "uint32", "type": "integer"}, "c": {}}});
        let p = problems(&bad);
        assert_eq!(p.len(), 4, "{p:?}");
    }
}
