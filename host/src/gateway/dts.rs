//! TypeScript declarations for tools, generated from their JSON Schemas, so
//! an agent reads one compact signature instead of a schema.
//!
//! Each tool is a method of its server's interface (`EverythingTools`);
//! interfaces merge, so per-tool files compose, and the index declares
//! `const tools`.
//!
//! ```
//! use std::sync::Arc;
//! use memory_mcp::gateway::{ToolInfo, tool_declaration};
//! let schema = serde_json::json!({"type": "object", "properties": {
//!     "message": {"type": "string", "description": "Message to echo"}}, "required": ["message"]});
//! let tool = rmcp::model::Tool::new("echo", "Echoes back the input.", Arc::new(schema.as_object().unwrap().clone()));
//! let text = tool_declaration(&ToolInfo { server: "everything".into(), tool });
//! assert!(text.contains("echo(args: {\n    /** Message to echo */\n    message: string;\n  }): Promise<unknown>;"));
//! ```

use serde_json::{Map, Value};

use super::catalog::ToolInfo;

/// How deep nested schemas are written before `unknown` stands in.
const MAX_DEPTH: usize = 12;

/// `everything` → `EverythingTools`, `server-fs` → `ServerFsTools`.
pub fn interface_name(server: &str) -> String {
    let mut out = String::new();
    for part in server.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'S');
    }
    out + "Tools"
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn key(name: &str) -> String {
    if is_identifier(name) { name.to_string() } else { Value::String(name.to_string()).to_string() }
}

/// A `/** … */` block at `indent`, or nothing for empty text.
fn doc(text: &str, indent: &str) -> String {
    let text = text.trim().replace("*/", "*\\/");
    if text.is_empty() {
        return String::new();
    }
    if !text.contains('\n') {
        return format!("{indent}/** {text} */\n");
    }
    let mut out = format!("{indent}/**\n");
    for line in text.lines() {
        out.push_str(&format!("{indent} * {}\n", line.trim_end()).replace(" * \n", " *\n"));
    }
    out + &format!("{indent} */\n")
}

/// The declaration of one tool: its server's interface with one method.
pub fn declare(info: &ToolInfo) -> String {
    let root = info.tool.input_schema.as_ref();
    let args = Writer { root }.ty(&Value::Object(root.clone()), 1, &mut Vec::new());
    let (returns, note) = match &info.tool.output_schema {
        Some(out) => (Writer { root: out.as_ref() }.ty(&Value::Object(out.as_ref().clone()), 1, &mut Vec::new()), ""),
        None => ("unknown".to_string(), "\n@returns The tool's structured result, or its text when it has none."),
    };
    let call = format!("await tools{}{}(args)", dotted(&info.server), dotted(&info.tool.name));
    let summary = format!("{}\n\nCall: `{call}`. Throws an Error carrying the tool's error.{note}", info.description());
    let optional = if required(root).is_empty() { "?" } else { "" };
    format!(
        "interface {} {{\n{}  {}(args{optional}: {args}): Promise<{returns}>;\n}}\n",
        interface_name(&info.server),
        doc(&summary, "  "),
        key(&info.tool.name),
    )
}

fn dotted(name: &str) -> String {
    if is_identifier(name) { format!(".{name}") } else { format!("[{}]", Value::String(name.to_string())) }
}

/// The index: a reference to each tool's file with its one-line summary,
/// and `declare const tools` over every server.
pub fn index(tools: &[&ToolInfo], path_of: impl Fn(&ToolInfo) -> String) -> String {
    let mut out = String::from(
        "// Tools callable from execute_agent_code as `await tools.<server>.<tool>(args)`.\n\
         // One file per tool, most used first; read only the ones a task needs.\n",
    );
    let mut servers: Vec<&str> = Vec::new();
    for t in tools {
        out.push_str(&format!(
            "/// <reference path=\"{}\" /> // {}\n",
            path_of(t),
            super::catalog::one_line(t.description()).replace('\n', " ")
        ));
        if !servers.contains(&t.server.as_str()) {
            servers.push(&t.server);
        }
    }
    servers.sort();
    out.push_str("declare const tools: {\n");
    for s in servers {
        out.push_str(&format!("  {}: {};\n", key(s), interface_name(s)));
    }
    out + "};\n"
}

fn required(schema: &Map<String, Value>) -> Vec<&str> {
    schema.get("required").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

struct Writer<'a> {
    /// Where `$ref`s resolve.
    root: &'a Map<String, Value>,
}

impl Writer<'_> {
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let path = reference.strip_prefix("#/")?;
        let mut at: &Value = self.root.get(path.split('/').next()?)?;
        for part in path.split('/').skip(1) {
            at = at.get(part.replace("~1", "/").replace("~0", "~"))?;
        }
        Some(at)
    }

    fn ty(&self, schema: &Value, depth: usize, seen: &mut Vec<String>) -> String {
        let Value::Object(s) = schema else {
            return if schema == &Value::Bool(false) { "never".into() } else { "unknown".into() };
        };
        if depth > MAX_DEPTH {
            return "unknown".into();
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            if seen.iter().any(|x| x == r) {
                return "unknown".into();
            }
            let Some(target) = self.resolve(r) else { return "unknown".into() };
            seen.push(r.to_string());
            let t = self.ty(target, depth, seen);
            seen.pop();
            return t;
        }
        if let Some(c) = s.get("const") {
            return c.to_string();
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            return union(values.iter().map(Value::to_string).collect());
        }
        for k in ["anyOf", "oneOf"] {
            if let Some(options) = s.get(k).and_then(Value::as_array) {
                return union(options.iter().map(|o| self.ty(o, depth + 1, seen)).collect());
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            let parts: Vec<String> = all.iter().map(|o| self.ty(o, depth + 1, seen)).collect();
            return if parts.len() == 1 { parts[0].clone() } else { parts.iter().map(|p| paren(p)).collect::<Vec<_>>().join(" & ") };
        }
        match s.get("type") {
            Some(Value::Array(types)) => {
                union(types.iter().filter_map(Value::as_str).map(|t| self.of_type(t, s, depth, seen)).collect())
            }
            Some(Value::String(t)) => self.of_type(t, s, depth, seen),
            _ if s.contains_key("properties") => self.object(s, depth, seen),
            _ => "unknown".into(),
        }
    }

    fn of_type(&self, t: &str, s: &Map<String, Value>, depth: usize, seen: &mut Vec<String>) -> String {
        match t {
            "string" => "string".into(),
            "number" | "integer" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                if let Some(items) = s.get("prefixItems").and_then(Value::as_array) {
                    let parts: Vec<String> = items.iter().map(|i| self.ty(i, depth + 1, seen)).collect();
                    return format!("[{}]", parts.join(", "));
                }
                match s.get("items") {
                    Some(items) => format!("{}[]", paren(&self.ty(items, depth + 1, seen))),
                    None => "unknown[]".into(),
                }
            }
            "object" => self.object(s, depth, seen),
            _ => "unknown".into(),
        }
    }

    fn object(&self, s: &Map<String, Value>, depth: usize, seen: &mut Vec<String>) -> String {
        let props = s.get("properties").and_then(Value::as_object);
        let extra = match s.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(v @ Value::Object(_)) => Some(self.ty(v, depth + 1, seen)),
            _ => Some("unknown".to_string()),
        };
        let Some(props) = props.filter(|p| !p.is_empty()) else {
            return match extra {
                Some(t) => format!("Record<string, {t}>"),
                None => "{}".into(),
            };
        };
        let required = required(s);
        let indent = "  ".repeat(depth + 1);
        let mut out = String::from("{\n");
        for (name, p) in props {
            let mut text = p.get("description").and_then(Value::as_str).unwrap_or("").to_string();
            if let Some(d) = p.get("default").filter(|d| !d.is_null()) {
                text = format!("{text}{}Default: {d}.", if text.is_empty() { "" } else { " " });
            }
            out.push_str(&doc(&text, &indent));
            let opt = if required.contains(&name.as_str()) { "" } else { "?" };
            out.push_str(&format!("{indent}{}{opt}: {};\n", key(name), self.ty(p, depth + 1, seen)));
        }
        if let (Some(t), true) = (extra, s.contains_key("additionalProperties")) {
            out.push_str(&format!("{indent}[key: string]: {t};\n"));
        }
        out + &"  ".repeat(depth) + "}"
    }
}

fn paren(t: &str) -> String {
    if t.contains(" | ") || t.contains(" & ") { format!("({t})") } else { t.to_string() }
}

fn union(mut parts: Vec<String>) -> String {
    let mut seen = Vec::new();
    parts.retain(|p| {
        let fresh = !seen.contains(p);
        seen.push(p.clone());
        fresh
    });
    match parts.len() {
        0 => "never".into(),
        1 => parts.remove(0),
        _ => parts.join(" | "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn info(server: &str, name: &str, schema: Value) -> ToolInfo {
        let tool = rmcp::model::Tool::new(name.to_string(), "Does a thing.", Arc::new(schema.as_object().unwrap().clone()));
        ToolInfo { server: server.into(), tool }
    }

    #[test]
    fn refs_enums_unions_and_optionals() {
        let schema = json!({
            "type": "object",
            "properties": {
                "kind": {"$ref": "#/$defs/Kind"},
                "limit": {"type": ["integer", "null"], "default": 10},
                "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                "odd-name": {"type": "boolean"},
                "self": {"$ref": "#"}
            },
            "required": ["kind"],
            "$defs": {"Kind": {"enum": ["a", "b"]}}
        });
        let d = declare(&info("server-fs", "get-sum", schema));
        assert!(d.starts_with("interface ServerFsTools {\n"), "{d}");
        assert!(d.contains("\"get-sum\"(args: {"), "{d}");
        assert!(d.contains("kind: \"a\" | \"b\";"), "{d}");
        assert!(d.contains("/** Default: 10. */\n    limit?: number | null;"), "{d}");
        assert!(d.contains("tags?: (string | number)[];"), "{d}");
        assert!(d.contains("meta?: Record<string, string>;"), "{d}");
        assert!(d.contains("\"odd-name\"?: boolean;"), "{d}");
        assert!(d.contains("Call: `await tools[\"server-fs\"][\"get-sum\"](args)`"), "{d}");
    }

    #[test]
    fn empty_inputs_are_optional_and_index_declares_servers() {
        let i = info("memory", "health_check", json!({"type": "object", "properties": {}}));
        let d = declare(&i);
        assert!(d.contains("health_check(args?: Record<string, unknown>): Promise<unknown>;"), "{d}");
        let idx = index(&[&i], |t| format!("{}/{}.d.ts", t.server, t.tool.name));
        assert!(idx.contains("/// <reference path=\"memory/health_check.d.ts\" /> // Does a thing."), "{idx}");
        assert!(idx.contains("declare const tools: {\n  memory: MemoryTools;\n};"), "{idx}");
    }
}
