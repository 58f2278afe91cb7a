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
//!
//! At start-up [`Registry::preload`] verifies the manifests before the JS
//! runtime and the plugins' components are compiled (seconds on a cold
//! artifact cache), so the first `tools/list` already lists every plugin
//! that verifies; a call made before its plugin has compiled waits for it
//! ([`Registry::ready`], bounded).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::Tool;
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};
use serde::Serialize;
use serde_json::Value;

use super::dir::{PluginDir, Verified};
use super::manifest::Manifest;
use super::name::NameError;
use super::policy::PluginPolicy;
use super::PluginError;
use crate::sandbox::plugin::{PluginCall, PluginCode};
use crate::sandbox::{CompiledPolicy, ExecutionResult};
use crate::sandbox::Sandbox;

/// Most `subscriptions/listen` streams open at once (over every session).
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// How often the watcher looks at the plugins directory.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A plugin ready to call.
pub struct LoadedPlugin {
    /// Its verified manifest.
    pub manifest: Manifest,
    /// Its tool-call policy, as written (checked within the server's).
    pub policy: PluginPolicy,
    compiled: Arc<CompiledPolicy>,
    code: PluginCode,
    /// The MCP tool it is served as (name, description, schemas, annotations).
    pub tool: Tool,
}

/// A plugin that did not load, and why.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Refused {
    /// The plugin's directory name.
    pub name: String,
    /// Why it did not load (the [`PluginError`](super::PluginError) text).
    pub reason: String,
}

/// A plugin whose files verified, listed while its component compiles.
pub struct Pending {
    /// Its verified manifest.
    pub manifest: Manifest,
    /// Its tool-call policy, as written.
    pub policy: PluginPolicy,
    /// The MCP tool it will be served as.
    pub tool: Tool,
}

#[derive(Default)]
struct State {
    loaded: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Verified at start-up, not yet loaded (none once the first sync ran).
    pending: BTreeMap<String, Arc<Pending>>,
    refused: Vec<Refused>,
    /// The directory as last synced.
    seen: Vec<(String, u64, Option<std::time::SystemTime>)>,
}

/// The plugins this server serves as tools: loaded, still compiling, or
/// refused, kept in step with the plugins directory (a watcher syncs it),
/// and the sessions to tell when that list changes.
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
    /// The `subscriptions/listen` streams (protocol 2026-07-28) to tell.
    sinks: Mutex<Vec<SubscriptionSink>>,
    /// Bumped after every preload and sync, for callers waiting on a plugin.
    settled: tokio::sync::watch::Sender<u64>,
    /// Whether the start-up preload has run (or was skipped).
    preloaded: tokio::sync::watch::Sender<bool>,
}

/// Why [`Registry::ready`] has no plugin to call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The plugin (first) is in the directory but was refused, for the reason
    /// (second).
    #[error("plugin `{0}` did not load: {1}")]
    Refused(String, String),
    /// The plugin (first) verified but its component is still compiling, for
    /// this many seconds (second) of waiting.
    #[error("plugin `{0}` is still compiling after {1} s; try again shortly")]
    StillCompiling(String, u64),
    /// The plugin was removed while the call waited for it.
    #[error("plugin `{0}` was removed")]
    Gone(String),
}

impl Registry {
    /// An empty registry over `dir`: plugin policies must fit within
    /// `server_policy`, and no plugin may take a name in `reserved`. Nothing is
    /// read until the preload or the first sync.
    pub fn new(dir: PluginDir, server_policy: Arc<CompiledPolicy>, reserved: Vec<String>) -> Self {
        Self {
            dir,
            server_policy,
            reserved,
            state: RwLock::default(),
            syncing: tokio::sync::Mutex::new(()),
            peers: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            settled: tokio::sync::watch::Sender::new(0),
            preloaded: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Verifies every plugin's files (checksums, manifest, policy) and
    /// lists those that pass while their components are still to compile.
    /// Runs once, before the first sync; a sync that came first makes it a
    /// no-op. The server spawns it at start-up; the first `tools/list` or
    /// call runs it if nothing has.
    pub async fn preload(&self) {
        let _one = self.syncing.lock().await;
        if *self.preloaded.borrow() {
            return;
        }
        if self.read().seen.is_empty() && self.read().loaded.is_empty() {
            let dir = self.dir.clone();
            let names: Vec<String> = dir.fingerprint().into_iter().map(|(n, _, _)| n).collect();
            let mut pending = BTreeMap::new();
            let mut refused = Vec::new();
            for name in names {
                match self.verify(&name).await {
                    Ok(v) => match v.manifest.input_schema.as_object() {
                        Some(schema) => {
                            let tool = Tool::new(name.clone(), v.manifest.description.clone(), schema.clone());
                            pending.insert(name, Arc::new(Pending { manifest: v.manifest, policy: v.policy, tool }));
                        }
                        None => refused.push(Refused { name, reason: "manifest: input_schema is not an object".into() }),
                    },
                    Err(e) => refused.push(Refused { name, reason: e.to_string() }),
                }
            }
            tracing::info!(listed = pending.len(), refused = refused.len(), "plugins listed from their manifests");
            let mut s = crate::sync::write(&self.state);
            s.pending = pending;
            s.refused = refused;
        }
        self.preloaded.send_replace(true);
        self.settled.send_modify(|n| *n += 1);
    }

    /// Waits (at most `within`) for the start-up preload, running it if
    /// it has not run, so a first `tools/list` lists the plugins.
    pub async fn preloaded(&self, within: Duration) {
        if *self.preloaded.borrow() {
            return;
        }
        let _ = tokio::time::timeout(within, self.preload()).await;
    }

    async fn verify(&self, name: &str) -> Result<Verified, PluginError> {
        self.check_name(name)?;
        let dir = self.dir.clone();
        let owned = name.to_string();
        tokio::task::spawn_blocking(move || dir.verify(&owned))
            .await
            .map_err(|e| PluginError::Internal(format!("verify task: {e}")))?
    }

    /// The plugins directory this registry serves.
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
        let mut peers = crate::sync::lock(&self.peers);
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    /// A `subscriptions/listen` stream to tell when the tool list changes,
    /// until it closes.
    /// Refused (false) when [`MAX_SUBSCRIPTIONS`] are open.
    pub fn attach_sink(&self, sink: SubscriptionSink) -> bool {
        let mut sinks = crate::sync::lock(&self.sinks);
        if sinks.len() >= MAX_SUBSCRIPTIONS {
            return false;
        }
        sinks.push(sink);
        true
    }

    /// Forgets the stream answering request `id` (it ended).
    pub fn detach_sink(&self, id: &rmcp::model::RequestId) {
        let mut sinks = crate::sync::lock(&self.sinks);
        sinks.retain(|s| s.id() != id);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        crate::sync::read(&self.state)
    }

    /// The loaded plugins' tools, by name.
    pub fn tools(&self) -> Vec<Tool> {
        self.read().loaded.values().map(|p| p.tool.clone()).collect()
    }

    /// The loaded plugin named `name`, if any (`None` while it compiles).
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.read().loaded.get(name).cloned()
    }

    /// Every plugin `tools/list` shows, by name: the loaded ones and those
    /// verified at start-up whose component is still compiling, each as
    /// `f(manifest, policy, tool)` makes it.
    pub fn listed<R>(&self, f: impl Fn(&Manifest, &PluginPolicy, &Tool) -> R) -> Vec<R> {
        let s = self.read();
        let mut all: BTreeMap<&str, R> =
            s.pending.iter().map(|(n, p)| (n.as_str(), f(&p.manifest, &p.policy, &p.tool))).collect();
        all.extend(s.loaded.iter().map(|(n, p)| (n.as_str(), f(&p.manifest, &p.policy, &p.tool))));
        all.into_values().collect()
    }

    /// Whether `name` is a plugin `tools/list` shows.
    pub fn is_listed(&self, name: &str) -> bool {
        let s = self.read();
        s.loaded.contains_key(name) || s.pending.contains_key(name)
    }

    /// The listed plugin `name`, once loaded: a plugin still compiling is
    /// waited for, at most `within`. `None` if no such plugin is listed.
    pub async fn ready(&self, name: &str, within: Duration) -> Option<Result<Arc<LoadedPlugin>, NotReady>> {
        let mut rx = self.settled.subscribe();
        let wait = async {
            loop {
                {
                    let s = self.read();
                    if let Some(p) = s.loaded.get(name) {
                        return Some(Ok(p.clone()));
                    }
                    if !s.pending.contains_key(name) {
                        let refused = s.refused.iter().find(|r| r.name == name);
                        return refused.map(|r| Err(NotReady::Refused(name.into(), r.reason.clone())));
                    }
                }
                if rx.changed().await.is_err() {
                    return Some(Err(NotReady::Gone(name.into())));
                }
            }
        };
        if !self.is_listed(name) {
            return None;
        }
        match tokio::time::timeout(within, wait).await {
            Ok(Some(r)) => Some(r),
            Ok(None) => Some(Err(NotReady::Gone(name.into()))),
            Err(_) => Some(Err(NotReady::StillCompiling(name.into(), within.as_secs()))),
        }
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
        // What clients were shown: the loaded plugins and the pending ones.
        let shown: BTreeMap<String, Manifest> = {
            let s = self.read();
            let mut shown: BTreeMap<String, Manifest> =
                s.pending.iter().map(|(n, p)| (n.clone(), p.manifest.clone())).collect();
            shown.extend(s.loaded.iter().map(|(n, p)| (n.clone(), p.manifest.clone())));
            shown
        };
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
        let changed = shown.len() != loaded.len()
            || shown.iter().zip(&loaded).any(|((a, ma), (b, pb))| a != b || *ma != pb.manifest);
        {
            let mut s = crate::sync::write(&self.state);
            *s = State { loaded, pending: BTreeMap::new(), refused, seen };
        }
        // A sync lists everything a preload would have.
        self.preloaded.send_replace(true);
        self.settled.send_modify(|n| *n += 1);
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
        let verified = self.verify(name).await?;
        if let Some(p) = current.filter(|p| p.manifest == verified.manifest) {
            return Ok(p.clone());
        }
        let started = std::time::Instant::now();
        let plugin = self.link(sandbox, verified).await?;
        tracing::info!(
            plugin = %name,
            world = plugin.manifest.world.as_str(),
            tool_call = plugin.code.version(),
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

    /// Sends `notifications/tools/list_changed` to every open session, and
    /// on every open `subscriptions/listen` stream that asked for it.
    pub async fn notify_changed(&self) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = crate::sync::lock(&self.peers);
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not send tools/list_changed");
            }
        }
        let sinks: Vec<SubscriptionSink> = crate::sync::lock(&self.sinks).clone();
        for sink in sinks {
            match sink.notify_tool_list_changed().await {
                Ok(()) => {}
                Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) => self.detach_sink(sink.id()),
                Err(e) => tracing::debug!(error = %e, "could not send tools/list_changed on a subscription"),
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
