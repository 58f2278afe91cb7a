//! The plugins a running server has loaded, served as MCP tools.
//!
//! [`Registry::sync`] brings the loaded set in line with the plugins
//! directory: new or changed plugins are verified (every checksum, the
//! policy, the component) and linked; a plugin that fails is refused with
//! the reason and the others still load; removed ones are dropped. A
//! watcher runs it when the directory's manifests change (so `memory-mcp
//! plugin build` and `plugin remove` reach a running server), and the
//! session is sent `notifications/tools/list_changed` whenever the set of
//! tools changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::Tool;
use rmcp::{Peer, RoleServer};
use serde::Serialize;
use serde_json::Value;

use super::dir::{PluginDir, Verified};
use super::manifest::Manifest;
use super::name::NameError;
use super::policy::PluginPolicy;
use super::PluginError;
use crate::sandbox::outcome::ExecutionResult;
use crate::sandbox::plugin::{PluginCall, PluginCode};
use crate::sandbox::policy::CompiledPolicy;
use crate::sandbox::Sandbox;

/// How often the watcher looks at the plugins directory.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A plugin ready to call.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub policy: PluginPolicy,
    compiled: Arc<CompiledPolicy>,
    code: PluginCode,
    pub tool: Tool,
}

/// A plugin that did not load, and why.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Refused {
    pub name: String,
    pub reason: String,
}

#[derive(Default)]
struct State {
    loaded: BTreeMap<String, Arc<LoadedPlugin>>,
    refused: Vec<Refused>,
    /// The directory as last synced.
    seen: Vec<(String, u64, Option<std::time::SystemTime>)>,
}

pub struct Registry {
    dir: PluginDir,
    server_policy: Arc<CompiledPolicy>,
    /// This server's own tool names, which plugins may not take.
    reserved: Vec<String>,
    state: RwLock<State>,
    /// One sync at a time.
    syncing: tokio::sync::Mutex<()>,
    /// The sessions to tell when the tool list changes (one over stdio;
    /// each open session over HTTP).
    peers: Mutex<Vec<Peer<RoleServer>>>,
}

impl Registry {
    pub fn new(dir: PluginDir, server_policy: Arc<CompiledPolicy>, reserved: Vec<String>) -> Self {
        Self {
            dir,
            server_policy,
            reserved,
            state: RwLock::default(),
            syncing: tokio::sync::Mutex::new(()),
            peers: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &PluginDir {
        &self.dir
    }

    /// Checks a name for a new plugin, including this server's own tools.
    pub fn check_name(&self, name: &str) -> Result<(), PluginError> {
        super::name::validate(name)?;
        if self.reserved.iter().any(|r| r == name) {
            return Err(NameError::Reserved(name.into()).into());
        }
        // One namespace: an analyzer's name is never a tool's.
        if self.dir.held_by_analyzer(name) {
            return Err(NameError::TakenByAnalyzer(name.into()).into());
        }
        Ok(())
    }

    /// A session to tell when the tool list changes. Sessions that have
    /// ended are forgotten here, so the list stays as long as the open ones.
    pub fn attach_peer(&self, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The loaded plugins' tools, by name.
    pub fn tools(&self) -> Vec<Tool> {
        self.read().loaded.values().map(|p| p.tool.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.read().loaded.get(name).cloned()
    }

    /// The loaded plugins, by name, and the refused ones.
    pub fn list(&self) -> (Vec<Arc<LoadedPlugin>>, Vec<Refused>) {
        let s = self.read();
        (s.loaded.values().cloned().collect(), s.refused.clone())
    }

    /// Loads, reloads and drops plugins to match the directory. Returns
    /// whether the set of tools changed (and, if so, has told the session).
    pub async fn sync(&self, sandbox: &Sandbox) -> bool {
        let _one = self.syncing.lock().await;
        let seen = self.dir.fingerprint();
        let names: Vec<String> = seen.iter().map(|(n, _, _)| n.clone()).collect();
        let before: BTreeMap<String, Arc<LoadedPlugin>> = self.read().loaded.clone();
        let mut loaded = BTreeMap::new();
        let mut refused = Vec::new();
        for name in &names {
            match self.load_one(sandbox, name, before.get(name)).await {
                Ok(p) => {
                    loaded.insert(name.clone(), p);
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::error!(plugin = %name, %reason, "plugin refused");
                    refused.push(Refused { name: name.clone(), reason });
                }
            }
        }
        let changed = before.len() != loaded.len()
            || before.iter().zip(&loaded).any(|((a, pa), (b, pb))| a != b || pa.manifest != pb.manifest);
        {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            *s = State { loaded, refused, seen };
        }
        if changed {
            self.notify_changed().await;
        }
        changed
    }

    async fn load_one(
        &self,
        sandbox: &Sandbox,
        name: &str,
        current: Option<&Arc<LoadedPlugin>>,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.check_name(name)?;
        let dir = self.dir.clone();
        let owned = name.to_string();
        let verified = tokio::task::spawn_blocking(move || dir.verify(&owned))
            .await
            .map_err(|e| PluginError::Internal(format!("verify task: {e}")))??;
        if let Some(p) = current.filter(|p| p.manifest == verified.manifest) {
            return Ok(p.clone());
        }
        let started = std::time::Instant::now();
        let plugin = self.link(sandbox, verified).await?;
        tracing::info!(
            plugin = %name,
            world = plugin.manifest.world.as_str(),
            cache_hit = plugin.code.load.cache_hit,
            millis = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        Ok(Arc::new(plugin))
    }

    async fn link(&self, sandbox: &Sandbox, v: Verified) -> Result<LoadedPlugin, PluginError> {
        let name = v.manifest.name.clone();
        let compiled = Arc::new(v.policy.compile(&name, self.server_policy.clone())?);
        let code = sandbox
            .prepare_plugin(&name, &v.wasm, &compiled)
            .await
            .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        let schema = match &v.manifest.input_schema {
            Value::Object(o) => o.clone(),
            _ => return Err(PluginError::Manifest("input_schema is not an object".into())),
        };
        let tool = Tool::new(name.clone(), v.manifest.description.clone(), schema);
        Ok(LoadedPlugin { manifest: v.manifest, policy: v.policy, compiled, code, tool })
    }

    /// Sends `notifications/tools/list_changed` to every open session.
    pub async fn notify_changed(&self) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not send tools/list_changed");
            }
        }
    }

    /// Calls plugin `plugin` with `input` as `context.input`, under its
    /// policy (within the server's) and limits, until `cancel` fires.
    pub async fn call(
        &self,
        sandbox: &Sandbox,
        plugin: &LoadedPlugin,
        id: uuid::Uuid,
        input: Value,
        cancel: tokio_util::sync::CancellationToken,
    ) -> ExecutionResult {
        let call = PluginCall {
            id,
            input,
            limits: plugin.policy.limits(sandbox.limits()),
            policy: plugin.compiled.clone(),
            cancel,
        };
        sandbox.call_plugin(&plugin.code, call).await
    }

    /// Re-syncs whenever the directory's manifests change, until the
    /// registry is dropped.
    pub fn spawn_watcher(self: &Arc<Self>, sandbox: Arc<Sandbox>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let Some(registry) = weak.upgrade() else { return };
                let now = registry.dir.fingerprint();
                let stale = registry.read().seen != now;
                if stale {
                    registry.sync(&sandbox).await;
                }
            }
        });
    }
}
