//! The tool gateway: how sandboxed code reaches MCP tools.
//!
//! [`Gateway`] implements the sandbox's [`ToolDispatcher`]. A call that the
//! policy admitted is routed to this server's own tools (server `memory`,
//! in-process) or to an upstream MCP server from `[servers.*]` (rmcp's
//! client, lazily connected). Every call, refused ones included, is
//! written to the [`Audit`].
//!
//! It also answers progressive disclosure: the [`Catalog`] of all
//! callable tools, searched by words and ordered by use, and their
//! TypeScript declarations ([`tool_declaration`], [`declaration_index`]).

mod audit;
mod catalog;
mod dts;
mod local;
mod result;
mod servers;
mod upstream;

pub use audit::{Audit, AuditError, AuditFilter, DEFAULT_MAX_RECORDS};
pub use catalog::{Catalog, ToolInfo, one_line};
pub use dts::{declare as tool_declaration, index as declaration_index};
pub use local::{OPERATOR_ONLY, OwnToolError, OwnTools, SANDBOX_CALLABLE, sandbox_callable};
pub use servers::UpstreamConfig;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

use anyhow::{Context as _, Result};
use rmcp::model::Tool;
use serde_json::Value;

use crate::sandbox::{CompiledPolicy, DispatchError, DispatchFuture, ResolveFuture, ToolCallRecord, ToolDispatcher};
use servers::LOCAL_SERVER;
use upstream::Upstream;

/// Routes the sandbox's tool calls: to this server's own tools
/// (`memory.*`) or to upstream MCP servers, under the sandbox policy, and
/// audits each call.
pub struct Gateway {
    upstreams: BTreeMap<String, Arc<Upstream>>,
    /// This server's tools, once the server is built (held weakly: the
    /// server holds this gateway).
    own: RwLock<Option<Weak<dyn OwnTools>>>,
    /// The built-in tools code may call ([`SANDBOX_CALLABLE`]), with
    /// their schemas, for the catalog.
    callable: Vec<Tool>,
    /// Every built-in tool's name, to tell "not from code" from "no such tool".
    builtin: Vec<String>,
    policy: Arc<CompiledPolicy>,
    audit: Option<Arc<Audit>>,
}

impl Gateway {
    /// Checks every `[servers.*]` table; connects to none of them yet.
    /// `builtin` is this server's own tools (`mcp::Server::tool_list`),
    /// callable once the server attaches itself ([`Gateway::attach_own`]).
    pub fn new(
        servers: &BTreeMap<String, UpstreamConfig>,
        policy: Arc<CompiledPolicy>,
        audit: Option<Arc<Audit>>,
        builtin: Vec<Tool>,
    ) -> Result<Self> {
        let mut upstreams = BTreeMap::new();
        for (name, config) in servers {
            let transport = config.transport(name).context("the [servers] config")?;
            upstreams.insert(name.clone(), Arc::new(Upstream::new(name.clone(), config.clone(), transport)));
        }
        let names = builtin.iter().map(|t| t.name.to_string()).collect();
        let callable = builtin.into_iter().filter(|t| sandbox_callable(&t.name)).collect();
        Ok(Self { upstreams, own: RwLock::new(None), callable, builtin: names, policy, audit })
    }

    /// Makes `memory.*` callable from code: this server's own tools. The
    /// gateway keeps only a weak reference; the server keeps it alive.
    pub fn attach_own(&self, own: Weak<dyn OwnTools>) {
        *crate::sync::write(&self.own) = Some(own);
    }

    /// The sandbox's tool policy (for telling agents what they may call).
    pub fn policy(&self) -> &Arc<CompiledPolicy> {
        &self.policy
    }

    /// The tool-call audit, when one is kept.
    pub fn audit(&self) -> Option<&Arc<Audit>> {
        self.audit.as_ref()
    }

    /// Calls per tool as the current principal may see them: its own, or
    /// every principal's for the operator (`local`: stdio, the CLI).
    pub fn usage(&self) -> std::collections::HashMap<String, u64> {
        self.usage_for(&crate::principal::Principal::current())
    }

    /// Calls per tool as `principal` may see them (see [`Gateway::usage`]).
    pub fn usage_for(&self, principal: &crate::principal::Principal) -> std::collections::HashMap<String, u64> {
        match &self.audit {
            Some(a) if principal.name() == crate::principal::LOCAL => a.usage(),
            Some(a) => a.usage_of(principal.name()),
            None => Default::default(),
        }
    }

    /// Every callable tool. Upstreams are connected as needed, all at once;
    /// those that are down are listed in `servers` with their error.
    pub async fn catalog(&self) -> Catalog {
        let mut tools: Vec<ToolInfo> =
            self.callable.iter().map(|tool| ToolInfo { server: LOCAL_SERVER.to_string(), tool: tool.clone() }).collect();
        let lists = futures::future::join_all(self.upstreams.values().map(|u| {
            let u = u.clone();
            async move { (u.name.clone(), u.tools().await) }
        }))
        .await;
        for (server, listed) in lists {
            if let Ok(list) = listed {
                tools.extend(list.iter().map(|tool| ToolInfo { server: server.clone(), tool: tool.clone() }));
            }
        }
        Catalog { tools, servers: self.upstreams.values().map(|u| u.status()).collect() }
    }

    /// Each upstream's state, without connecting.
    pub fn health(&self) -> Value {
        serde_json::to_value(self.upstreams.values().map(|u| u.status()).collect::<Vec<_>>()).unwrap_or(Value::Null)
    }

    /// Whether `server` offers `tool`: this server's from its router, an
    /// upstream's from its tool list (connecting first if need be).
    async fn find(&self, server: &str, tool: &str) -> Result<(), DispatchError> {
        let known = if server == LOCAL_SERVER {
            let callable = self.callable.iter().any(|t| t.name == tool);
            if !callable && self.builtin.iter().any(|t| t == tool) {
                return Err(DispatchError::Unavailable(format!(
                    "`memory.{tool}` cannot be called from inside the sandbox"
                )));
            }
            callable
        } else {
            let Some(upstream) = self.upstreams.get(server) else {
                return Err(DispatchError::Unavailable(format!("no MCP server named `{server}` is configured")));
            };
            upstream.tools().await?.iter().any(|t| t.name == tool)
        };
        if known { Ok(()) } else { Err(DispatchError::Unavailable(format!("server `{server}` has no tool `{tool}`"))) }
    }

    async fn route(&self, server: &str, tool: &str, args: Value) -> Result<Value, DispatchError> {
        let Value::Object(args) = args else {
            return Err(DispatchError::Unavailable("arguments must be a JSON object".into()));
        };
        if server == LOCAL_SERVER {
            return self.call_own(tool, args).await;
        }
        let Some(upstream) = self.upstreams.get(server) else {
            return Err(DispatchError::Unavailable(format!("no MCP server named `{server}` is configured")));
        };
        result::into_value(upstream.call(tool, args).await?)
    }
}

impl Gateway {
    /// Calls `memory.<tool>`: refused for operator-only tools and tools
    /// code may not reach, before their handler.
    async fn call_own(&self, tool: &str, args: serde_json::Map<String, Value>) -> Result<Value, DispatchError> {
        if OPERATOR_ONLY.contains(&tool) {
            return Err(DispatchError::Unavailable(format!(
                "`memory.{tool}` is for the operator's MCP client only and cannot be called from inside the sandbox"
            )));
        }
        if !sandbox_callable(tool) {
            return Err(DispatchError::Unavailable(format!("this server has no tool `{tool}` that code may call")));
        }
        let own = crate::sync::read(&self.own).as_ref().and_then(Weak::upgrade);
        let Some(own) = own else {
            return Err(DispatchError::Unavailable("this server's tools are not available (not started, or shutting down)".into()));
        };
        match own.call_own(tool, args).await {
            Ok(result) => result::into_value(result),
            Err(e @ OwnToolError::NotFound(_)) => Err(DispatchError::Unavailable(e.to_string())),
            Err(e) => Err(DispatchError::Failed(e.to_string())),
        }
    }
}

impl ToolDispatcher for Gateway {
    fn call<'a>(&'a self, server: &'a str, tool: &'a str, args: Value) -> DispatchFuture<'a> {
        Box::pin(self.route(server, tool, args))
    }

    fn resolve<'a>(&'a self, server: &'a str, tool: &'a str) -> ResolveFuture<'a> {
        Box::pin(self.find(server, tool))
    }

    fn audit(&self, record: &ToolCallRecord) {
        if let Some(audit) = &self.audit
            && let Err(e) = audit.append(record)
        {
            tracing::error!(error = %e, server = %record.server, tool = %record.tool, "the tool-call audit could not be written");
        }
    }
}

/// Writes one `.d.ts` per tool under `out/<server>/<tool>.d.ts`, and
/// `out/index.d.ts`, most used first. Returns the number of tools written.
pub fn export(catalog: &Catalog, usage: &std::collections::HashMap<String, u64>, out: &Path) -> Result<usize> {
    let ordered = catalog.by_usage(usage);
    let path_of = |t: &ToolInfo| format!("{}/{}.d.ts", t.server, file_name(&t.tool.name));
    for t in &ordered {
        let path = out.join(path_of(t));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_atomic(&path, dts::declare(t).as_bytes())?;
    }
    write_atomic(&out.join("index.d.ts"), dts::index(&ordered, path_of).as_bytes())?;
    Ok(ordered.len())
}

/// A tool name as a file name: path separators and dots are replaced.
pub fn file_name(tool: &str) -> String {
    tool.chars().map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
