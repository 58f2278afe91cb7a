//! Progressive disclosure and the audit: `search_tools`, `describe_tools`
//! and `get_tool_audit`, plus the `tools://<server>/<tool>.d.ts`
//! resources. The agent loads the signatures a task needs instead of every
//! upstream schema up front.

use rmcp::model::{
    CallToolResult, ContentBlock, ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::params::{Parameters, input_error, params_or_return};
use super::server::Server;
use crate::gateway::{AuditFilter, Catalog, ToolInfo, declaration_index, one_line, tool_declaration};

/// Most names one `describe_tools` call may ask for.
pub const MAX_DESCRIBE: usize = 50;
/// The URI scheme of tool declarations.
const SCHEME: &str = "tools://";
const TS_MIME: &str = "application/typescript";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchToolsParams {
    /// What the task needs, in words (e.g. "read a file"); empty lists every tool, most used first.
    #[serde(default)]
    pub query: String,
    /// Most results, 1 to 100.
    #[serde(default = "default_search_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: usize,
}

fn default_search_limit() -> usize {
    10
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeToolsParams {
    /// `server.tool` names from search_tools, e.g. ["everything.echo", "memory.query_memory"]; at most 50.
    #[schemars(length(min = 1, max = 50))]
    pub names: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolAuditParams {
    /// Only calls made by this execution (the `execution_id` in its result).
    #[serde(default)]
    pub execution_id: Option<uuid::Uuid>,
    /// Only calls to this server, e.g. `memory` or `everything`.
    #[serde(default)]
    pub server: Option<String>,
    /// Only calls to this tool name.
    #[serde(default)]
    pub tool: Option<String>,
    /// Only this outcome: ok, tool_error, unavailable, invalid_arguments or denied.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Most records, newest first, 1 to 1000.
    #[serde(default = "default_audit_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: usize,
    /// Continue after an earlier page: its `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

fn default_audit_limit() -> usize {
    50
}

fn split_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('.').filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// `tools://<server>/<tool>.d.ts`.
pub fn resource_uri(t: &ToolInfo) -> String {
    format!("{SCHEME}{}/{}.d.ts", t.server, t.tool.name)
}

#[tool_router(router = gateway_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Find tools code can call: this server's (`memory`: episodes, patterns, analytics, audit, health) and configured upstream servers'. Give the task in words; get `server.tool` names, one-line descriptions, whether the policy allows each, and call counts. Then describe_tools."
    )]
    pub(super) async fn search_tools(&self, params: Parameters<SearchToolsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if !(1..=100).contains(&p.limit) {
            return Ok(input_error("limit must be between 1 and 100"));
        }
        let catalog = self.gateway().catalog().await;
        let usage = self.gateway().usage();
        let policy = self.gateway().policy();
        let hits: Vec<_> = catalog
            .search(&p.query, p.limit, &usage)
            .into_iter()
            .map(|m| {
                let allowed = split_name(&m.name).is_some_and(|(s, t)| policy.allows(s, t));
                json!({"name": m.name, "description": m.description, "allowed": allowed, "calls": m.calls, "score": m.score})
            })
            .collect();
        let down: Vec<_> = catalog.servers.iter().filter(|s| s.state == "down").collect();
        Ok(CallToolResult::structured(json!({
            "tools": hits,
            "total_tools": catalog.tools.len(),
            "unavailable_servers": down,
            "next": "describe_tools({names}) gives TypeScript signatures; call them inside execute_agent_code as `await tools.<server>.<tool>(args)`.",
        })))
    }

    #[tool(
        description = "TypeScript declarations of tools by `server.tool` name (arguments with their docs, result type), for code that calls `await tools.<server>.<tool>(args)`."
    )]
    pub(super) async fn describe_tools(&self, params: Parameters<DescribeToolsParams>) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if p.names.is_empty() || p.names.len() > MAX_DESCRIBE {
            return Ok(input_error(format!("names must list 1 to {MAX_DESCRIBE} `server.tool` names")));
        }
        let catalog = self.gateway().catalog().await;
        let policy = self.gateway().policy();
        let mut text = String::new();
        let mut unknown = Vec::new();
        for name in &p.names {
            match split_name(name).and_then(|(s, t)| catalog.find(s, t)) {
                Some(info) => {
                    if !policy.allows(&info.server, &info.tool.name) {
                        text.push_str(&format!("// {name}: not allowed by this server's sandbox policy\n"));
                    }
                    text.push_str(&tool_declaration(info));
                }
                None => unknown.push(name.as_str()),
            }
        }
        if !unknown.is_empty() {
            let why = unavailable_note(&catalog);
            if text.is_empty() {
                return Ok(input_error(format!("no such tool: {}. search_tools lists what exists.{why}", unknown.join(", "))));
            }
            text.push_str(&format!("// not found: {}{why}\n", unknown.join(", ")));
        }
        let mut out = CallToolResult::structured(json!({"typescript": text, "not_found": unknown}));
        out.content = vec![ContentBlock::text(text)];
        Ok(out)
    }

    #[tool(
        description = "The audit of tool calls made by your sandboxed code (your principal's only), newest first: time, execution_id, server and tool, argument size and blake3 hash, outcome (ok, tool_error, unavailable, invalid_arguments, denied; omitted counts an execution's calls past the first 64), latency, error and principal. Filter by execution_id, server, tool or outcome. Paged: pass `next_cursor` back as `cursor` for older records."
    )]
    pub(super) async fn get_tool_audit(
        &self,
        params: Parameters<ToolAuditParams>,
        extensions: rmcp::model::Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        if !(1..=1000).contains(&p.limit) {
            return Ok(input_error("limit must be between 1 and 1000"));
        }
        let Some(audit) = self.gateway().audit().cloned() else {
            return Ok(input_error("this server keeps no audit"));
        };
        // A principal reads only its own records and counts (the operator,
        // `local`, every principal's counts).
        let caller = crate::principal::Principal::of(&extensions);
        let usage = self.gateway().usage_for(&caller);
        let principal = caller.name().to_string();
        let operator = principal == crate::principal::LOCAL;
        let filter = AuditFilter {
            execution_id: p.execution_id,
            server: p.server,
            tool: p.tool,
            outcome: p.outcome,
            principal: Some(principal.clone()),
        };
        let cursor = p.cursor;
        let read = tokio::task::spawn_blocking(move || {
            let page = audit.page(&filter, p.limit, cursor.as_deref())?;
            let total = if operator { audit.len() } else { audit.len_of(&principal)? };
            Ok::<_, crate::gateway::AuditError>((page, total))
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match read {
            Ok((page, total)) => Ok(CallToolResult::structured(json!({
                "records": page.records,
                "next_cursor": page.next,
                "total_records": total,
                "usage": usage,
            }))),
            Err(e) => Ok(input_error(e.to_string())),
        }
    }
}

fn unavailable_note(catalog: &Catalog) -> String {
    let down: Vec<&str> = catalog.servers.iter().filter(|s| s.state == "down").map(|s| s.server.as_str()).collect();
    if down.is_empty() { String::new() } else { format!(" (unavailable now: {})", down.join(", ")) }
}

impl Server {
    /// One resource per callable tool, most used first.
    pub(crate) async fn tool_resources(&self) -> ListResourcesResult {
        let catalog = self.gateway().catalog().await;
        let usage = self.gateway().usage();
        let mut resources = vec![
            Resource::new(format!("{SCHEME}index.d.ts"), "index.d.ts")
                .with_description("Every callable tool with its one-line description, and `declare const tools`.")
                .with_mime_type(TS_MIME),
        ];
        resources.extend(catalog.by_usage(&usage).into_iter().map(|t| {
            Resource::new(resource_uri(t), t.qualified())
                .with_description(one_line(t.description()))
                .with_mime_type(TS_MIME)
        }));
        ListResourcesResult::with_all_items(resources)
    }

    pub(crate) fn tool_resource_templates(&self) -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{SCHEME}{{server}}/{{tool}}.d.ts"), "tool declaration")
                .with_description("The TypeScript declaration of one tool callable from execute_agent_code.")
                .with_mime_type(TS_MIME),
        ])
    }

    pub(crate) async fn read_tool_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        let not_found = || ErrorData::resource_not_found(format!("no such resource: {uri}"), None);
        let path = uri.strip_prefix(SCHEME).ok_or_else(not_found)?;
        let catalog = self.gateway().catalog().await;
        let text = if path == "index.d.ts" {
            let usage = self.gateway().usage();
            let ordered = catalog.by_usage(&usage);
            declaration_index(&ordered, resource_uri)
        } else {
            let (server, file) = path.split_once('/').ok_or_else(not_found)?;
            let tool = file.strip_suffix(".d.ts").ok_or_else(not_found)?;
            tool_declaration(catalog.find(server, tool).ok_or_else(not_found)?)
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type(TS_MIME)]))
    }
}
