//! What clients see of each built-in tool besides its handler: a title,
//! annotations (what a call may change, which clients use to decide which
//! calls need approval), an output schema, and whether `tools/list` shows
//! it by default. One table, [`TOOLS`], applied to the router in one place
//! ([`apply`]), with the portable schema rewrite; a test checks that every
//! tool has an entry.
//!
//! The default listing is the core: the episode lifecycle, recall, code
//! mode and discovery. The rest (read-only analytics, episode edits, the
//! operator's configuration tools) stay callable by name and, where the
//! sandbox may call them, are found with `search_tools`/`describe_tools`
//! and called from code. `--list-all-tools` (or `[mcp] list_all_tools`)
//! lists every tool.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

use super::portable::portable;
use crate::plugins::{Manifest, PluginPolicy, PluginWorld};

/// What a call may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    ReadOnly,
    /// Adds (a record, a step); repeating it adds again.
    Adds,
    /// Overwrites or removes; repeating it changes nothing more.
    Replaces,
    /// Runs code that may call tools of any effect.
    Runs,
}

/// One built-in tool's metadata.
pub struct ToolMeta {
    /// The tool's MCP name.
    pub name: &'static str,
    /// Its short human-readable title (`title` in `tools/list`).
    pub title: &'static str,
    /// What calling it does to this server's data, for its annotations.
    pub effect: Effect,
    /// Reaches beyond this server's own data: upstream MCP servers or a
    /// remote embedding provider.
    pub open_world: bool,
    /// Shown by `tools/list` without `--list-all-tools`.
    pub core: bool,
    /// The `structuredContent` every successful call returns, in the
    /// compact notation of [`object`].
    pub output: &'static str,
}

impl ToolMeta {
    /// The MCP annotations that follow from the effect: read-only,
    /// destructive, idempotent and open-world hints, with the title.
    pub fn annotations(&self) -> ToolAnnotations {
        let (read_only, destructive, idempotent) = match self.effect {
            Effect::ReadOnly => (true, false, true),
            Effect::Adds => (false, false, false),
            Effect::Replaces => (false, true, true),
            Effect::Runs => (false, true, false),
        };
        ToolAnnotations::from_raw(None, Some(read_only), Some(destructive), Some(idempotent), Some(self.open_world))
    }
}

const fn t(
    name: &'static str,
    title: &'static str,
    effect: Effect,
    open_world: bool,
    core: bool,
    output: &'static str,
) -> ToolMeta {
    ToolMeta { name, title, effect, open_world, core, output }
}

use Effect::*;

/// The fields of an `execute_agent_code` (and plugin) result.
pub const EXECUTION_RESULT: &str = "status:status execution_id:uuid stdout?:string stderr?:string \
     execution_time_ms?:number elapsed_ms?:number error_type?:string message?:string line?:integer \
     column?:integer limit?:string reason?:string retry_after_ms?:integer";

/// Episode summaries as `query_memory` and `get_episode` show them.
const EPISODE: &str = "episode_id:uuid task_description:string domain:string task_type:string context:object \
     started_at:date-time completed_at?:date-time outcome?:object reward?:object reflection?:object \
     metadata:object step_count:integer status:string steps:array";

/// Every built-in tool. `output` lists top-level fields as `name:type`
/// (`name?:` when a field may be absent; fields that may be `null` are
/// left out, as the schema cannot say so portably).
pub const TOOLS: &[ToolMeta] = &[
    t("execute_agent_code", "Run JS/TS in the sandbox", Runs, true, true, EXECUTION_RESULT),
    t("health_check", "Server health", ReadOnly, false, false,
        "status:string version:string uptime_s:number sandbox:object executions:object storage:object learning:object \
         embeddings:object upstream_servers:array plugins:object"),
    t("get_metrics", "Execution metrics", ReadOnly, false, false,
        "uptime_s:number executions:object storage:object"),
    // Episodes.
    t("create_episode", "Start an episode", Adds, false, true, "episode_id:uuid"),
    t("add_episode_step", "Record a step", Adds, false, true, "episode_id:uuid step_number:integer"),
    t("complete_episode", "Finish an episode", Adds, false, true,
        "episode_id:uuid reward:object reflection:object"),
    t("get_episode", "Get an episode", ReadOnly, false, false, EPISODE),
    t("get_episode_timeline", "Episode timeline", ReadOnly, false, false,
        "episode_id:uuid started_at:date-time steps:array"),
    t("update_episode", "Edit tags and metadata", Replaces, false, false, "episode_id:uuid tags:array metadata:object"),
    t("delete_episode", "Delete an episode", Replaces, false, false,
        "episode_id:uuid deleted:boolean steps_deleted:integer"),
    t("bulk_episodes", "Get episodes by id", ReadOnly, false, false, "episodes:array missing:array invalid:array"),
    t("query_memory", "Search episodes", ReadOnly, false, true,
        "results:array total_matches:integer ranking:string index:object"),
    t("quality_metrics", "Quality of recorded work", ReadOnly, false, false,
        "episodes:integer completed:integer success_rate:number average_reward:number time_range:string"),
    t("query_semantic_memory", "Search episodes by meaning", ReadOnly, false, false,
        "results:array similarity_threshold:number coverage:object"),
    // Patterns.
    t("analyze_patterns", "Learned patterns", ReadOnly, false, false,
        "patterns:array heuristics:array total_matching:integer analysis_backlog:integer"),
    t("advanced_pattern_analysis", "Time-series analysis", ReadOnly, false, false, "series:array correlations:array"),
    t("search_patterns", "Search patterns", ReadOnly, false, false, "results:array weights:object note?:string"),
    t("recommend_patterns", "Recommend patterns", ReadOnly, false, false,
        "recommendations:array heuristics:array weights:object note?:string"),
    t("record_pattern_feedback", "Pattern feedback", Adds, false, false, "pattern_id:uuid effectiveness:object"),
    // Embeddings (the operator's).
    t("configure_embeddings", "Choose the embedding provider", Replaces, true, false,
        "provider:string model:string dimensions:integer space:string reembedding:boolean queued:integer remaining?:integer"),
    t("test_embeddings", "Test the embedding provider", ReadOnly, true, false,
        "provider:string model:string dimensions:integer latency_ms:number norm:number preview:array"),
    // Discovery and the audit.
    t("search_tools", "Find callable tools", ReadOnly, true, true,
        "tools:array total_tools:integer unavailable_servers:array next:string"),
    t("describe_tools", "TypeScript signatures of tools", ReadOnly, true, true, "typescript:string not_found:array"),
    t("get_tool_audit", "Audit of tool calls from code", ReadOnly, false, false,
        "records:array total_records:integer usage:object"),
    // Plugins.
    t("save_plugin", "Save code as a plugin tool", Replaces, false, false, "saved:object dir:string"),
    t("list_plugins", "List plugins", ReadOnly, false, false, "plugins:array refused:array dir:string"),
    t("remove_plugin", "Remove a plugin", Replaces, false, false, "removed:string"),
];

/// The metadata of built-in tool `name`, if it is one.
pub fn meta(name: &str) -> Option<&'static ToolMeta> {
    TOOLS.iter().find(|m| m.name == name)
}

/// `"a:string b?:integer"` as an object schema: each field typed (`uuid`
/// and `date-time` are strings of that format; `status` an execution
/// status), the unmarked ones required.
pub fn object(fields: &str) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields.split_whitespace() {
        let Some((name, ty)) = field.split_once(':') else { continue };
        let (name, optional) = match name.strip_suffix('?') {
            Some(n) => (n, true),
            None => (name, false),
        };
        let schema = match ty {
            "uuid" | "date-time" => json!({"type": "string", "format": ty}),
            "status" => {
                let all: Vec<&str> = crate::sandbox::Status::ALL.iter().map(|s| s.as_str()).collect();
                json!({"type": "string", "enum": all})
            }
            other => json!({"type": other}),
        };
        properties.insert(name.to_string(), schema);
        if !optional {
            required.push(Value::String(name.to_string()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));
    schema
}

/// Gives every tool of `router` its title, annotations and output schema,
/// and makes its input schema portable.
pub fn apply<S>(router: &mut ToolRouter<S>) {
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        tool.input_schema = Arc::new(portable(&tool.input_schema));
        if let Some(m) = meta(&tool.name) {
            tool.title = Some(m.title.to_string());
            tool.annotations = Some(m.annotations());
            tool.output_schema = Some(Arc::new(object(m.output)));
        }
    }
}

/// A plugin as a tool, from its verified manifest, policy and tool (which
/// a plugin still compiling has too): its portable input schema, a title,
/// annotations that follow from its grants, and the execution result's
/// schema.
pub fn plugin_tool_of(manifest: &Manifest, policy: &PluginPolicy, tool: &Tool) -> Tool {
    let mut tool = tool.clone();
    tool.input_schema = Arc::new(portable(&tool.input_schema));
    tool.title = Some(format!("Plugin {}", manifest.name));
    let grants: &[String] = match manifest.world {
        PluginWorld::PurePlugin => &[],
        PluginWorld::ToolPlugin => &policy.tools.allow,
    };
    tool.annotations = Some(plugin_annotations(grants));
    tool.output_schema = Some(Arc::new(object(EXECUTION_RESULT)));
    tool
}

/// A plugin may do what the tools it is granted do: a pure plugin, or
/// one granted only read-only tools of this server, is read-only; a grant
/// of any other tool (a write, a pattern, an upstream server's) is not,
/// and one reaching another server is open-world.
pub fn plugin_annotations(grants: &[String]) -> ToolAnnotations {
    let read_only = grants
        .iter()
        .all(|g| g.strip_prefix("memory.").and_then(meta).is_some_and(|m| m.effect == Effect::ReadOnly));
    let open_world = grants.iter().any(|g| !g.starts_with("memory.") || g.strip_prefix("memory.").and_then(meta).is_some_and(|m| m.open_world));
    let (destructive, idempotent) = if read_only { (false, true) } else { (true, false) };
    ToolAnnotations::from_raw(None, Some(read_only), Some(destructive), Some(idempotent), Some(open_world))
}

/// Whether `tools/list` shows `tool` by default.
pub fn listed_by_default(tool: &Tool) -> bool {
    meta(&tool.name).is_none_or(|m| m.core)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::Server;

    #[test]
    fn every_tool_has_metadata_and_every_entry_a_tool() {
        let names = Server::tool_names();
        for n in &names {
            assert!(meta(n).is_some(), "`{n}` has no entry in mcp/surface.rs TOOLS");
        }
        for m in TOOLS {
            assert!(names.iter().any(|n| n == m.name), "`{}` is in TOOLS but is not a tool", m.name);
        }
    }

    #[test]
    fn plugin_annotations_follow_from_grants() {
        let g = |v: &[&str]| plugin_annotations(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(g(&[]).read_only_hint, Some(true));
        assert_eq!(g(&["memory.query_memory", "memory.health_check"]).read_only_hint, Some(true));
        assert_eq!(g(&["memory.query_memory"]).open_world_hint, Some(false));
        let w = g(&["memory.query_memory", "memory.delete_episode"]);
        assert_eq!((w.read_only_hint, w.destructive_hint), (Some(false), Some(true)));
        assert_eq!(g(&["memory.*"]).read_only_hint, Some(false));
        let up = g(&["everything.echo"]);
        assert_eq!((up.read_only_hint, up.open_world_hint), (Some(false), Some(true)));
    }

    #[test]
    fn every_listed_schema_is_portable_and_complete() {
        for tool in Server::tool_list() {
            assert!(tool.title.is_some() && tool.annotations.is_some(), "{}", tool.name);
            let input = Value::Object((*tool.input_schema).clone());
            let output = Value::Object((*tool.output_schema.clone().expect("output schema")).clone());
            for (what, s) in [("input", &input), ("output", &output)] {
                let p = super::super::portable::problems(s);
                assert!(p.is_empty(), "{} {what} schema: {p:?}\n{s:#}", tool.name);
            }
        }
    }
}
