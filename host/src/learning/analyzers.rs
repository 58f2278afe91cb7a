//! Pattern analyzers as components: the built-in one (embedded) and any
//! third-party ones found in the plugins directory, each with a typed
//! `InstancePre` built once, a fresh `Store` per call, fuel, memory and
//! wall-clock limits from its policy, and its own health record.
//!
//! An installed analyzer lives in `PLUGINS_DIR/analyzers/` (see
//! [`crate::plugins::analyzer_dir`]): `<name>.wasm`, exporting
//! `memory-mcp:patterns/analyzer@0.1.0`, its policy `<name>.policy.toml`
//! (clamped to the server's ceilings) and `<name>.analyzer.json`, whose
//! checksums both files must match. An analyzer that fails to load (no
//! manifest, a changed file, a bad policy, not an analyzer) is listed with
//! the reason and the others load. An installed analyzer whose calls fail five times in
//! a row is quarantined until restart.
//!
//! Each call's store caps the memory of all the component's memories
//! together and how many instances, memories and tables it makes
//! ([`crate::wasm::MemoryGuard`]), and how many bytes the host
//! copies out of its result ([`AnalyzerLimits::copy_budget`]), checked
//! string by string before each is copied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use wasmtime::component::{Component, Instance, Linker};
use wasmtime::{Engine, Store};

use super::model::Provenance;
use super::episodes_host::{self, EpisodesCtx, EpisodesView};
use crate::memory::EpisodeStore;
use crate::plugins::analyzer_dir::{AnalyzerDir, Entry, unmanifested_reason};
use crate::plugins::analyzer_policy::{AnalyzerLimits, AnalyzerPolicy};
use crate::plugins::layout;
use crate::wasm::ArtifactCache;
use crate::wasm::CappedPipe;
use crate::wasm::{Budget, Grants, GuestOptions, GuestState, HostInterface, Runner, Stop, linker};
use super::scorer_export::ScorerExport;
use crate::world::{analyzer, episode_analysis, scorer, scorer_0_2_0, statistics, tallies, types};

mod kept;
use kept::Kept;

/// The interface an analyzer component exports.
pub const ANALYZER_EXPORT: &str = "memory-mcp:patterns/analyzer@0.1.0";
/// The interface a scorer component exports (called from learning/scorer.rs).
pub const SCORER_EXPORT: &str = "memory-mcp:patterns/scorer@0.4.0";
/// The scorer interface of 0.2.0, whose scorers still load (adapted in
/// learning/scorer_export.rs).
pub const SCORER_EXPORT_0_2_0: &str = "memory-mcp:patterns/scorer@0.2.0";
/// The interface the built-in analyzer exports for the tallies of learned
/// records (called from learning/tallies.rs).
pub const TALLIES_EXPORT: &str = "memory-mcp:patterns/tallies@0.3.0";
/// Consecutive failed calls after which an installed analyzer is quarantined.
pub const QUARANTINE_AFTER: u32 = 5;
/// The name the built-in analyzer goes by.
pub const BUILTIN: &str = "builtin";
/// Most stderr kept from a call (a panic message explains a trap).
const STDERR_BYTES: usize = 4096;
/// The read-only episode `store` interface, for analyzers whose policy
/// grants it.
const EPISODES: HostInterface<EpisodesCtx> = HostInterface { name: "memory-mcp:memory/store", add: add_episodes };

static WITH_EPISODES: [HostInterface<EpisodesCtx>; 1] = [EPISODES];

fn add_episodes(linker: &mut Linker<GuestState<EpisodesCtx>>) -> wasmtime::Result<()> {
    episodes_host::add_to_linker(linker, episodes_view)
}

fn episodes_view(state: &mut GuestState<EpisodesCtx>) -> EpisodesView<'_> {
    EpisodesView { ctx: &mut state.host }
}

/// How an analyzer call failed. Each is contained: the call's store is
/// dropped and nothing it returned is kept.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The component trapped (the trap's message).
    #[error("trapped: {0}")]
    Trap(String),
    /// It used up its fuel for the call (the limit, in units).
    #[error("ran out of fuel (its limit is {0} units per call)")]
    OutOfFuel(u64),
    /// It ran past its wall-clock limit (in ms).
    #[error("exceeded its wall-clock limit of {0} ms")]
    Timeout(u64),
    /// Its memory would have grown past its limit (in MiB).
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(u64),
    /// It called an import its policy does not grant (which).
    #[error("used a capability its policy does not grant: {0}")]
    Denied(String),
    /// It returned an error of its own (its text).
    #[error("reported an error: {0}")]
    Reported(String),
    /// What it returned broke the output contract.
    #[error("{0}")]
    Output(#[from] super::convert::OutputError),
    /// It failed too many calls in a row and is no longer called.
    #[error("is quarantined after {QUARANTINE_AFTER} consecutive failures")]
    Quarantined,
}

/// Where an analyzer's component came from, for `health_check`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// The built-in pattern-analyzer component, embedded in the binary.
    Builtin,
    /// Installed in the plugins directory's `analyzers/` (the wire name
    /// `plugin` is kept: `health_check` has always shown it).
    #[serde(rename = "plugin")]
    Installed {
        /// The component's file.
        path: PathBuf,
    },
}

/// An analyzer's record since start-up, for `health_check`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// `ok`, `failing` (its last call failed) or `quarantined`.
    pub status: &'static str,
    /// Calls that succeeded.
    pub batches_ok: u64,
    /// Calls that failed.
    pub batches_failed: u64,
    /// Failures since the last success; at [`QUARANTINE_AFTER`] it is
    /// quarantined.
    pub consecutive_failures: u32,
    /// Patterns and heuristics it returned, in all.
    pub records_reported: u64,
    /// Why the last failed call failed.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Wall-clock time of the last call, in milliseconds.
    pub last_call_ms: f64,
    /// Fuel the last call used, in units.
    pub last_fuel_used: u64,
}

/// One loaded analyzer component (the built-in one, an installed one, or
/// a scorer): its policy, its pre-instantiated runner, the exports it has,
/// and its health.
pub struct Analyzer {
    /// Its name and version, as its `info` reports them; stamped on what it
    /// learns.
    pub provenance: Provenance,
    /// What it does, as its `info` says (at most 1000 characters).
    pub description: String,
    /// Where its component came from.
    pub source: Source,
    /// What it may import and the limits it runs under.
    pub policy: AnalyzerPolicy,
    /// The component, pre-instantiated once.
    runner: Runner<EpisodesCtx, ()>,
    /// `analyzer@0.1.0`; a third-party scorer has none.
    analyzer: Option<analyzer::GuestIndices>,
    statistics: Option<statistics::GuestIndices>,
    /// `scorer@0.4.0` or `@0.2.0` (called from learning/scorer.rs).
    pub(super) scorer: Option<ScorerExport>,
    /// The scorer's weights, from its `info`, reported beside rankings.
    pub(super) weights: Vec<(String, f64)>,
    /// `episode-analysis@0.2.0`, exported by the built-in analyzer (see
    /// [`super::analysis`]).
    pub(super) episode_analysis: Option<episode_analysis::GuestIndices>,
    /// `tallies@0.3.0`, exported by the built-in analyzer (see
    /// [`super::tallies`]).
    pub(super) tallies: Option<tallies::GuestIndices>,
    health: Mutex<Health>,
    /// Instances kept between calls, for the built-in scorer only (see
    /// [`kept`]); `None`: a fresh instance per call.
    kept: Option<Kept>,
}

/// An analyzer file that did not load, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// The analyzer's file (or manifest) that was refused.
    pub file: PathBuf,
    /// Why it was refused.
    pub reason: String,
}

/// A description of one analyzer for `health_check`.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyzerReport {
    /// Its name and version.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// What it does.
    pub description: String,
    /// Where its component came from.
    pub source: Source,
    /// Whether its policy lets it read the episode store.
    pub grants_store: bool,
    /// The limits it runs under (after clamping to the server's).
    pub limits: AnalyzerLimits,
    /// Its record since start-up.
    #[serde(flatten)]
    pub health: Health,
}

impl Analyzer {
    async fn new(
        engine: &Engine,
        component: &Component,
        source: Source,
        policy: AnalyzerPolicy,
        blake3: String,
        memory: &Arc<EpisodeStore>,
    ) -> Result<Self> {
        let interfaces: &[HostInterface<EpisodesCtx>] = if policy.grants.store { &WITH_EPISODES } else { &[] };
        let linker = linker::linker(engine, component, Grants::NONE, interfaces).map_err(|e| anyhow!("linking: {e}"))?;
        let runner = Runner::new(&linker, component, |_| Ok(())).map_err(|e| anyhow!("{e}"))?;
        let pre = runner.pre();
        let indices = analyzer::GuestIndices::new(pre).ok();
        let scorer = match scorer::GuestIndices::new(pre) {
            Ok(columns) => Some(ScorerExport::Columns(columns)),
            Err(_) => scorer_0_2_0::GuestIndices::new(pre).ok().map(ScorerExport::Rows),
        };
        if indices.is_none() && scorer.is_none() {
            anyhow::bail!("it exports neither {ANALYZER_EXPORT} nor {SCORER_EXPORT} (or {SCORER_EXPORT_0_2_0})");
        }
        let statistics = statistics::GuestIndices::new(pre).ok();
        let episode_analysis = episode_analysis::GuestIndices::new(pre).ok();
        let tallies = tallies::GuestIndices::new(pre).ok();
        let mut a = Self {
            provenance: Provenance { analyzer: String::new(), analyzer_version: String::new(), component_blake3: blake3 },
            description: String::new(),
            source,
            policy,
            runner,
            analyzer: indices,
            statistics,
            scorer,
            weights: Vec::new(),
            episode_analysis,
            tallies,
            health: Mutex::new(Health { status: "ok", ..Default::default() }),
            kept: None,
        };
        let limit = a.policy.limits.timeout_ms;
        let info = a.call(memory, async |store, instance| {
            let mut scored = None;
            if let Some(s) = &a.scorer {
                scored = Some(s.info(&mut *store, instance).await?);
            }
            match (&a.analyzer, scored) {
                (Some(an), scored) => Ok((an.load(&mut *store, instance)?.call_info(&mut *store).await?, scored)),
                (None, Some(s)) => Ok((
                    analyzer::AnalyzerInfo { name: s.name.clone(), version: s.version.clone(), description: s.description.clone() },
                    Some(s),
                )),
                (None, None) => Err(wasmtime::Error::msg("no analyzer or scorer export")),
            }
        });
        let (info, scored) = info.await.map_err(|f| match f {
            Failure::Timeout(_) => anyhow!("`info` did not return within {limit} ms"),
            other => anyhow!("`info` failed: {other}"),
        })?;
        check_name(&info.name)?;
        if let Some(s) = scored {
            a.weights = scorer_weights(s.weights)?;
        }
        a.provenance.analyzer = info.name;
        a.provenance.analyzer_version = info.version.chars().take(64).collect();
        a.description = info.description.chars().take(1000).collect();
        Ok(a)
    }

    /// Its name, as its `info` reports it (checked: 1-64 of `a-z0-9-`).
    pub fn name(&self) -> &str {
        &self.provenance.analyzer
    }

    /// Why a call stopped, in this analyzer's terms.
    fn failure(&self, stop: Stop, stderr: &CappedPipe) -> Failure {
        let limits = &self.policy.limits;
        match stop {
            Stop::CopyBudget => Failure::Output(super::convert::OutputError::TooLarge(format!(
                "the result is over the {} bytes the host copies from one call (max_output_bytes plus the records' fixed parts); refused before copying",
                limits.copy_budget()
            ))),
            Stop::OutOfFuel => Failure::OutOfFuel(limits.fuel),
            Stop::Deadline => Failure::Timeout(limits.timeout_ms),
            Stop::Memory => Failure::Memory(limits.memory_mb),
            Stop::Denied(denied) => Failure::Denied(denied.to_string()),
            other => Failure::Trap(other.with_stderr(stderr)),
        }
    }

    /// Runs `f` against a fresh instance under this analyzer's limits:
    /// its fuel, memory and wall clock, and the most bytes the host copies
    /// out of one result (or takes in from one import call), checked as
    /// each string and list is lifted, before it is copied.
    pub(super) async fn call<T>(
        &self,
        memory: &Arc<EpisodeStore>,
        f: impl AsyncFnOnce(&mut Store<GuestState<EpisodesCtx>>, &Instance) -> wasmtime::Result<T>,
    ) -> Result<T, Failure> {
        if crate::sync::lock(&self.health).status == "quarantined" {
            return Err(Failure::Quarantined);
        }
        if let Some(kept) = &self.kept {
            return self.call_kept(kept, memory, f).await;
        }
        let started = Instant::now();
        let limits = &self.policy.limits;
        let stderr = CappedPipe::new(STDERR_BYTES);
        let episodes = if self.policy.grants.store { EpisodesCtx::granted(memory.clone()) } else { EpisodesCtx::none() };
        let options = GuestOptions::new(limits.memory_mb << 20, started + Duration::from_millis(limits.timeout_ms)).stderr(stderr.clone());
        let state = GuestState::new(options, episodes).map_err(|e| Failure::Trap(e.to_string()))?;
        let budget = Budget { fuel: Some(limits.fuel), copy_bytes: Some(limits.copy_budget()) };
        let ended = self.runner.call(state, budget, None, async |store, instance, ()| f(store, instance).await).await;
        let result = ended.result.map_err(|stop| self.failure(stop, &stderr));
        let mut h = crate::sync::lock(&self.health);
        h.last_call_ms = started.elapsed().as_secs_f64() * 1000.0;
        h.last_fuel_used = ended.fuel_used.unwrap_or(0);
        result
    }

    /// Extracts patterns from `episodes`. The caller checks the output and
    /// reports the outcome with [`Analyzer::record`].
    pub async fn extract(&self, memory: &Arc<EpisodeStore>, episodes: &[types::Episode]) -> Result<analyzer::Analysis, Failure> {
        let Some(indices) = &self.analyzer else {
            return Err(Failure::Reported(format!("{} does not export {ANALYZER_EXPORT}", self.name())));
        };
        let out = self
            .call(memory, async |store, instance| indices.load(&mut *store, instance)?.call_extract(&mut *store, episodes).await)
            .await?;
        out.map_err(|e| {
            Failure::Reported(match e {
                analyzer::AnalyzeError::InvalidInput(m) => format!("invalid input: {m}"),
                analyzer::AnalyzeError::Internal(m) => format!("internal error: {m}"),
            })
        })
    }

    /// Time-series analysis, for analyzers that export `statistics`.
    pub async fn analyze_series(
        &self,
        memory: &Arc<EpisodeStore>,
        kind: statistics::AnalysisType,
        config: statistics::AnalysisConfig,
        data: &[statistics::Series],
    ) -> Result<Result<statistics::Report, String>, Failure> {
        let Some(stats) = &self.statistics else {
            return Err(Failure::Reported(format!("{} does not export statistics", self.name())));
        };
        self.call(memory, async |store, instance| {
            stats.load(&mut *store, instance)?.call_analyze_series(&mut *store, kind, config, data).await
        })
        .await
    }

    /// Records how a batch went: `Ok(records kept)` or the failure.
    pub fn record(&self, outcome: Result<u64, &Failure>) {
        let mut h = crate::sync::lock(&self.health);
        match outcome {
            Ok(n) => {
                h.batches_ok += 1;
                h.consecutive_failures = 0;
                h.records_reported += n;
            }
            Err(Failure::Quarantined) => {}
            Err(f) => {
                h.batches_failed += 1;
                h.consecutive_failures += 1;
                h.last_error = Some(f.to_string());
                h.last_error_at = Some(Utc::now());
                tracing::warn!(analyzer = %self.provenance.analyzer, error = %f, "analyzer batch failed; contained");
                if h.consecutive_failures >= QUARANTINE_AFTER && !matches!(self.source, Source::Builtin) {
                    h.status = "quarantined";
                    tracing::error!(analyzer = %self.provenance.analyzer, "analyzer quarantined until restart");
                } else {
                    h.status = "failing";
                }
            }
        }
        if h.consecutive_failures == 0 {
            h.status = "ok";
        }
    }

    /// A copy of its record since start-up.
    pub fn health(&self) -> Health {
        crate::sync::lock(&self.health).clone()
    }

    /// What `health_check` shows of it.
    pub fn report(&self) -> AnalyzerReport {
        AnalyzerReport {
            provenance: self.provenance.clone(),
            description: self.description.clone(),
            source: self.source.clone(),
            grants_store: self.policy.grants.store,
            limits: self.policy.limits,
            health: self.health(),
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        anyhow::bail!("its name {name:?} is not 1-64 characters of [a-z0-9-]");
    }
    Ok(())
}

/// Every loaded analyzer, the built-in first, and the installed ones refused.
pub struct AnalyzerSet {
    /// The fuel-metered, on-demand engine installed analyzers run on.
    engine: Engine,
    memory: Arc<EpisodeStore>,
    /// The built-in analyzer (always present).
    pub builtin: Analyzer,
    /// The installed analyzers that loaded.
    pub installed: Vec<Analyzer>,
    /// The installed analyzers that did not load, and why.
    pub rejected: Vec<Rejected>,
    /// The built-in scorer: the built-in component's `scorer` export, with
    /// its own health and no store grant.
    pub scorer: Analyzer,
    /// A third-party scorer from the analyzers directory, which replaces
    /// the built-in one (called from learning/scorer.rs).
    pub installed_scorer: Option<Analyzer>,
}

impl AnalyzerSet {
    /// Loads the built-in analyzer from `builtin_wasm` and every analyzer
    /// plugin in `plugins_dir` (when it exists).
    pub async fn load(cache: &ArtifactCache, builtin_wasm: &[u8], plugins_dir: Option<&Path>, memory: Arc<EpisodeStore>) -> Result<Self> {
        let engine = crate::wasm::build_engine(crate::wasm::Metering::Fuel)?;
        let builtin_engine = crate::wasm::build_engine(builtin_metering())?;
        let (component, load) = cache.load(&builtin_engine, "pattern-analyzer", builtin_wasm, None).await?;
        tracing::info!(cache_hit = load.cache_hit, millis = load.millis, "built-in pattern analyzer ready");
        let hash = blake3::hash(builtin_wasm).to_hex().to_string();
        let builtin = Analyzer::new(&builtin_engine, &component, Source::Builtin, AnalyzerPolicy::builtin(), hash.clone(), &memory)
            .await
            .context("starting the built-in pattern analyzer")?;
        if builtin.tallies.is_none() {
            anyhow::bail!("the built-in pattern analyzer does not export {TALLIES_EXPORT}");
        }
        let scorer = Analyzer::new(&builtin_engine, &component, Source::Builtin, scorer_policy(AnalyzerPolicy::builtin()), hash, &memory)
            .await
            .context("starting the built-in scorer")?;
        if scorer.scorer.is_none() {
            anyhow::bail!("the built-in pattern analyzer does not export {SCORER_EXPORT}");
        }
        // The built-in scorer runs once per ranking query: its instances
        // are kept between calls (see `kept`).
        let scorer = Analyzer { kept: Some(Kept::default()), ..scorer };
        let mut set = Self { engine, memory, builtin, installed: Vec::new(), rejected: Vec::new(), scorer, installed_scorer: None };
        if let Some(dir) = plugins_dir {
            set.load_installed(cache, dir).await;
        }
        Ok(set)
    }

    /// Loads every analyzer installed in `root/analyzers`.
    async fn load_installed(&mut self, cache: &ArtifactCache, root: &Path) {
        let dir = AnalyzerDir::new(layout::analyzers_dir(root));
        let entries = match dir.entries() {
            Ok(e) => e,
            Err(e) => {
                self.rejected.push(Rejected { file: dir.path().to_path_buf(), reason: format!("cannot read the analyzers directory: {e}") });
                return;
            }
        };
        for entry in entries {
            let (file, loaded) = match entry {
                Entry::Unmanifested(n) => (dir.wasm_path(&n), Err(anyhow!(unmanifested_reason(&dir, &n)))),
                Entry::Installed(n) => (dir.wasm_path(&n), self.load_one(cache, &dir, &n).await),
            };
            match loaded {
                Ok(a) if a.scorer.is_some() => {
                    tracing::info!(scorer = %a.name(), file = %file.display(), "installed scorer loaded; it replaces the built-in scorer");
                    self.installed_scorer = Some(a);
                }
                Ok(a) => {
                    tracing::info!(analyzer = %a.name(), file = %file.display(), "installed analyzer loaded");
                    self.installed.push(a);
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(file = %file.display(), %reason, "installed analyzer refused");
                    self.rejected.push(Rejected { file, reason });
                }
            }
        }
    }

    /// Verifies analyzer `name` against its manifest and loads it.
    async fn load_one(&self, cache: &ArtifactCache, dir: &AnalyzerDir, name: &str) -> Result<Analyzer> {
        let owned = (dir.clone(), name.to_string());
        let v = tokio::task::spawn_blocking(move || owned.0.verify(&owned.1)).await.context("verify task")??;
        for note in &v.clamped {
            tracing::warn!(analyzer = %name, "policy {}: {note}", v.manifest.policy.file);
        }
        let cache_name = format!("analyzer-{name}");
        let (component, _) = cache.load(&self.engine, &cache_name, &v.wasm, None).await.context("compiling")?;
        let exports = |export: &str| component.component_type().exports(&self.engine).any(|(n, _)| n == export);
        let policy = match (exports(ANALYZER_EXPORT), exports(SCORER_EXPORT) || exports(SCORER_EXPORT_0_2_0)) {
            (false, false) => anyhow::bail!("it does not export {ANALYZER_EXPORT}, so it is not a pattern analyzer (nor {SCORER_EXPORT} or {SCORER_EXPORT_0_2_0}, a scorer)"),
            (true, true) => anyhow::bail!("it exports both {ANALYZER_EXPORT} and a scorer: install the analyzer and the scorer as two components"),
            (false, true) => {
                if let Some(other) = &self.installed_scorer {
                    anyhow::bail!("the scorer {:?} is already installed; only one scorer replaces the built-in one", other.name());
                }
                scorer_policy(v.policy)
            }
            (true, false) => v.policy,
        };
        let source = Source::Installed { path: dir.wasm_path(name) };
        let a = Analyzer::new(&self.engine, &component, source, policy, v.manifest.wasm.blake3.clone(), &self.memory).await?;
        let taken = a.name() == BUILTIN || self.installed.iter().chain(&self.installed_scorer).any(|p| p.name() == a.name());
        if taken {
            anyhow::bail!("another analyzer is already named {:?}", a.name());
        }
        Ok(a)
    }

    /// The fuel-metered engine installed analyzers run on (the built-in
    /// one runs on an engine metered as [`builtin_metering`] says).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The episode store analyzers granted `store` read from.
    pub fn memory(&self) -> &Arc<EpisodeStore> {
        &self.memory
    }

    /// The built-in analyzer, then the installed ones.
    pub fn all(&self) -> impl Iterator<Item = &Analyzer> {
        std::iter::once(&self.builtin).chain(&self.installed)
    }
}

/// Most weights a scorer may report.
const MAX_WEIGHTS: usize = 16;

/// How the built-in analyzer and scorer are metered: fuel, with the
/// pooling allocator sized to the built-in policy's memory limit, since
/// their shape is known and the scorer runs once per query (a fresh
/// instance then costs a slot reset, not fresh mappings). Installed
/// analyzers, of any shape, run on an on-demand [`crate::wasm::Metering::Fuel`]
/// engine.
pub fn builtin_metering() -> crate::wasm::Metering {
    crate::wasm::Metering::PooledFuel { max_memory_bytes: AnalyzerPolicy::builtin().limits.memory_mb << 20 }
}

/// The policy a scorer runs under: its own limits, and never the episode
/// store (a scorer computes from its arguments alone).
pub fn scorer_policy(mut p: AnalyzerPolicy) -> AnalyzerPolicy {
    p.grants.store = false;
    p
}

/// A scorer's weights from its `info`, checked.
pub fn scorer_weights(ws: Vec<scorer::Weight>) -> Result<Vec<(String, f64)>> {
    if ws.len() > MAX_WEIGHTS {
        anyhow::bail!("its info reports {} weights; at most {MAX_WEIGHTS}", ws.len());
    }
    ws.into_iter()
        .map(|x| {
            if x.name.is_empty() || x.name.len() > 64 || !x.value.is_finite() {
                anyhow::bail!("its info reports a weight {:?} = {}; names are 1-64 bytes, values finite", x.name, x.value);
            }
            Ok((x.name, x.value))
        })
        .collect()
}
