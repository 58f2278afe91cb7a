//! This server's own tools: `execute_agent_code` (code mode),
//! `health_check` and `get_metrics`, and how an execution's result is
//! answered (also for plugin calls).

use rmcp::model::{CallToolResult, ContentBlock, Extensions};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::params::{Parameters, input_error, params_or_return};
use super::server::{RuntimeState, Server};
use crate::learning::AnalyzersState;
use crate::principal::Principal;
use crate::sandbox::{Execution, ExecutionResult, Language, Sandbox, Status};

/// `{task, input}`, visible to the code as the global `context`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeContext {
    /// What the code is for, in words.
    #[serde(default)]
    pub task: String,
    /// A JSON object the code should work on.
    #[serde(default)]
    pub input: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteAgentCodeParams {
    /// JavaScript, written as the body of an async function: `return` gives
    /// the result (returned as JSON), `await` works, and
    /// `console.log`/`console.error` are captured. At most 100 KB. No
    /// filesystem, network, environment or subprocesses are reachable.
    pub code: String,
    /// `javascript` or `typescript`; if omitted, JavaScript, or TypeScript
    /// when only that parses. Types are erased inside the sandbox (lines
    /// and columns kept).
    #[serde(default)]
    pub language: Option<Language>,
    /// Available to the code as the global `context`.
    #[serde(default)]
    pub context: CodeContext,
    /// Lower this call's wall-clock limit (ms). It cannot exceed the
    /// server's limit (5000 ms in the default profile).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Lower this call's memory limit (MiB). It cannot exceed the server's
    /// limit (128 MiB in the default profile).
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[tool_router(router = core_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Run JavaScript or TypeScript in a WebAssembly sandbox and get its result. `await tools.<server>.<tool>(args)` calls the MCP tools the policy allows (this server's under `memory`, including those only search_tools lists); a failing tool throws. CPU, memory, output and code size are limited. `status`: success, error (syntax|runtime, with line), timeout, resource_limit or security_violation; all but success are isError."
    )]
    async fn execute_agent_code(
        &self,
        params: Parameters<ExecuteAgentCodeParams>,
        cancel: CancellationToken,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let p = params_or_return!(params);
        let principal = Principal::of(&extensions);
        let sandbox = match self.sandbox().await {
            Ok(s) => s,
            Err(e) => return Ok(input_error(e)),
        };
        let limits = match sandbox.limits().narrowed(p.timeout_ms, p.memory_mb) {
            Ok(l) => l,
            Err(e) => return Ok(input_error(e.to_string())),
        };
        let context = json!({"task": p.context.task, "input": p.context.input});
        let id = uuid::Uuid::now_v7();
        let code = p.code.clone();
        let execution = Execution { id, code: p.code, language: p.language.unwrap_or_default(), context, limits };
        let ran = super::detect::run(&sandbox, execution, p.language.is_none(), &cancel).await;
        self.recent(&principal).remember(id, code, ran.language, ran.result.status(), ran.calls.answered.into_iter().collect());
        // The execution_id names this execution's tool calls in
        // get_tool_audit and its code in save_plugin.
        let mut out = execution_result(&ran.result, id);
        if ran.detected {
            out.content.insert(0, rmcp::model::ContentBlock::text("ran as TypeScript: it did not parse as JavaScript, and did once its types were erased"));
        }
        Ok(out)
    }

    #[tool(description = "Server health: whether the JS runtime is loaded, sandbox pool occupancy, executions by status, storage (episode counts, disk size, last sync), learning (analysis backlog, each pattern analyzer's health, refused plugins), embeddings, upstream MCP servers (idle, connected or down), tool-audit size, plugins (loaded and refused) and uptime.")]
    pub(super) async fn health_check(&self, params: Parameters<NoParams>) -> Result<CallToolResult, ErrorData> {
        let _ = params_or_return!(params);
        let (status, runtime) = match &*self.runtime.borrow() {
            RuntimeState::Loading => ("starting", json!({"state": "loading"})),
            RuntimeState::Failed(e) => ("unhealthy", json!({"state": "failed", "error": e})),
            RuntimeState::Ready(s) => {
                let load = s.load_report();
                (
                    "healthy",
                    json!({
                        "state": "ready",
                        "artifact_cache_hit": load.cache_hit,
                        "load_ms": load.millis,
                        "pool": self.pool(s),
                        "limits": {
                            "timeout_ms": s.limits().timeout.as_millis() as u64,
                            "memory_mb": s.limits().memory_mb(),
                            "max_output_bytes": s.limits().max_output_bytes,
                            "max_code_bytes": s.limits().max_code_bytes,
                        },
                    }),
                )
            }
        };
        Ok(CallToolResult::structured(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.metrics.uptime().as_secs_f64(),
            "sandbox": runtime,
            "executions": self.metrics.counts(),
            "storage": self.store.stats(),
            "learning": self.learning_health(),
            "embeddings": self.embeddings.health(),
            "upstream_servers": self.gateway.health(),
            "tool_audit_records": self.gateway.audit().map(|a| a.len()),
            "plugins": self.plugins_health(),
        })))
    }

    #[tool(description = "Metrics: executions by status, latency p50/p95/p99, pool occupancy, storage figures and uptime.")]
    pub(super) async fn get_metrics(&self, params: Parameters<NoParams>) -> Result<CallToolResult, ErrorData> {
        let _ = params_or_return!(params);
        let pool = match &*self.runtime.borrow() {
            RuntimeState::Ready(s) => self.pool(s),
            _ => Value::Null,
        };
        Ok(CallToolResult::structured(json!({
            "uptime_s": self.metrics.uptime().as_secs_f64(),
            "executions": {
                "by_status": self.metrics.counts(),
                "latency": self.metrics.latency(),
            },
            "pool": pool,
            "storage": self.store.stats(),
        })))
    }
}

impl Server {
    /// The learning section of `health_check`: the analysis backlog, the
    /// worker, each analyzer's and scorer's health, and plugins refused at
    /// start-up.
    fn learning_health(&self) -> Value {
        let (state, analyzers, rejected, scorers) = match self.learning.state() {
            AnalyzersState::Loading => ("loading", Value::Null, Value::Null, Value::Null),
            AnalyzersState::Failed(e) => ("failed", json!({"error": e}), Value::Null, Value::Null),
            AnalyzersState::Ready(set) => (
                "ready",
                serde_json::to_value(set.all().map(|a| a.report()).collect::<Vec<_>>()).unwrap_or(Value::Null),
                serde_json::to_value(&set.rejected).unwrap_or(Value::Null),
                // The scorer in use first (a plugin, when installed), then the built-in one.
                serde_json::to_value(set.scorers().map(|a| a.report()).collect::<Vec<_>>()).unwrap_or(Value::Null),
            ),
        };
        let counts: serde_json::Map<String, Value> = self
            .patterns()
            .counts()
            .into_iter()
            .map(|(k, n)| (serde_json::to_value(k).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(), json!(n)))
            .collect();
        json!({
            "state": state,
            "analysis_backlog": self.store.analysis_backlog().ok(),
            "worker": serde_json::to_value(self.learning.status()).unwrap_or(Value::Null),
            "records": self.patterns().len(),
            "records_by_kind": counts,
            "analyzers": analyzers,
            "rejected_plugins": rejected,
            "scorers": scorers,
        })
    }

    /// The plugins section of `health_check`.
    fn plugins_health(&self) -> Value {
        let (loaded, refused) = self.plugins.list();
        json!({
            "dir": self.plugins.dir().path(),
            "loaded": loaded.iter().map(|p| p.manifest.name.as_str()).collect::<Vec<_>>(),
            "refused": refused,
        })
    }

    /// Pool occupancy, as health and metrics report it.
    fn pool(&self, s: &Sandbox) -> Value {
        let (running, max) = s.occupancy();
        json!({"running": running, "max_concurrency": max, "queued": self.metrics.queued()})
    }
}

/// An execution's result as a tool result: a readable line, then the
/// structured result with its `execution_id`. Anything but success (an
/// error, timeout, resource limit, security violation, a busy server) is
/// an `isError` result, which keeps the structured result.
pub fn execution_result(result: &ExecutionResult, id: uuid::Uuid) -> CallToolResult {
    let mut structured = serde_json::to_value(result).unwrap_or(Value::Null);
    if let Some(fields) = structured.as_object_mut() {
        fields.insert("execution_id".into(), json!(id));
    }
    let mut out = CallToolResult::structured(structured);
    out.content.insert(0, ContentBlock::text(result.summary()));
    if result.status() != Status::Success {
        out.is_error = Some(true);
    }
    out
}
