//! Code mode: agent JavaScript run in the QuickJS component under enforced
//! limits.
//!
//! One [`Sandbox`] owns the engine, the pre-initialised runtime component
//! and its `InstancePre` (built once), and a semaphore bounding concurrent
//! executions. Every execution gets a fresh `Store`:
//! - CPU and wall clock: an epoch deadline checked every tick, plus an
//!   async timeout that also covers time spent in host (tool) calls;
//! - memory: a `ResourceLimiter` on linear memory;
//! - output: stdout/stderr captured up to a cap, with a marker;
//! - capabilities: only what [`Grants`] links.

pub(crate) mod capabilities;
mod dispatch;
mod legacy;
mod limits;
mod outcome;
pub(crate) mod plugin;
mod policy;
pub(crate) mod tool_names;
mod tools;
pub(crate) mod typescript;

pub use capabilities::Grants;
pub use dispatch::{DispatchError, DispatchFuture, NoServers, ResolveFuture, ToolCallRecord, ToolDispatcher, outcome as call_outcome};
pub use limits::{DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUED, Limits, Profile};
pub use outcome::{ErrorType, ExecutionResult, Status};
pub use policy::{CompiledPolicy, ToolPolicy};
pub use tool_names::{check as check_tool_name, shorten};
pub use tools::CallSummary;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmtime::{Engine, Store, Trap};
use wasmtime::component::Instance;

use crate::metrics::Metrics;
use crate::wasm::{ArtifactCache, INIT_FUNC, LoadReport};
use crate::wasm::CappedPipe;
use crate::wasm::{Budget, GuestOptions, GuestState, Metering, Runner, Stop, linker};
use crate::world::runner::{GuestIndices, JsError, RunOutcome, RunRequest};
use outcome::LimitKind;
use tools::{RateLimiter, ToolsCtx};
use typescript::{StripError, TypeStripper};

/// Everything an execution needs that is fixed at start-up.
pub struct SandboxConfig {
    /// The server's limits; each call may only narrow them.
    pub limits: Limits,
    /// Executions that run at once (each holds a wasmtime instance).
    pub max_concurrency: usize,
    /// Calls that may wait for a slot; beyond this they are answered busy.
    pub max_queued: usize,
    /// The server's tool-call policy (what code may call).
    pub policy: CompiledPolicy,
    /// Where allowed tool calls are sent, and audited.
    pub dispatcher: Arc<dyn ToolDispatcher>,
    /// Host interfaces linked beyond the always-granted base.
    pub grants: Grants,
}

/// A loaded, ready-to-run JS runtime.
pub struct Sandbox {
    engine: Engine,
    /// The JS runtime, pre-instantiated once.
    runtime: Runner<ToolsCtx, GuestIndices>,
    permits: Arc<Semaphore>,
    /// Each principal's share of `permits`, when several share them
    /// ([`crate::principal::fair_share`]).
    shares: std::sync::Mutex<std::collections::HashMap<crate::principal::Principal, Arc<Semaphore>>>,
    max_concurrency: usize,
    max_queued: usize,
    queued: std::sync::atomic::AtomicUsize,
    limits: Limits,
    policy: Arc<CompiledPolicy>,
    dispatcher: Arc<dyn ToolDispatcher>,
    rate: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    load: LoadReport,
    cache: ArtifactCache,
    /// Loaded on first use (or by [`Sandbox::typescript`] at start-up).
    stripper: tokio::sync::OnceCell<Result<Arc<TypeStripper>, String>>,
}

/// The language of submitted code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Compiled by QuickJS as it is.
    #[default]
    JavaScript,
    /// Types are stripped inside the sandbox before QuickJS compiles it.
    TypeScript,
}

/// One execution request, already validated for shape.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Names the execution in the tool-call audit.
    pub id: uuid::Uuid,
    /// The source, at most `limits.max_code_bytes` long.
    pub code: String,
    /// Whether to strip TypeScript types first.
    pub language: Language,
    /// `{task, input}`; becomes the global `context`.
    pub context: Value,
    /// The limits this execution runs under (the server's, narrowed by the call).
    pub limits: Limits,
}

impl Sandbox {
    /// Builds the engine and loads the runtime component (from the artifact
    /// cache when possible).
    pub async fn load(config: SandboxConfig, cache: &ArtifactCache, runtime_wasm: &[u8], metrics: Arc<Metrics>) -> Result<Self> {
        let metering = Metering::Epoch { max_concurrency: config.max_concurrency, max_memory_bytes: config.limits.memory_bytes };
        let engine = crate::wasm::build_engine(metering)?;
        let (component, load) = cache.load(&engine, "js-runtime", runtime_wasm, Some(INIT_FUNC)).await?;
        tracing::info!(cache_hit = load.cache_hit, millis = load.millis, key = %load.key, "JS runtime ready");
        let linker = linker::linker(&engine, &component, linker::Grants::NONE, config.grants.interfaces())
            .map_err(|e| anyhow::anyhow!("linking the JS runtime: {e}"))?;
        let runtime = Runner::new(&linker, &component, |pre| {
            GuestIndices::new(pre).map_err(|e| wasmtime::format_err!("the JS runtime does not export the runner interface: {e}"))
        })
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("loading the JS runtime")?;
        Ok(Self {
            engine,
            runtime,
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            shares: Default::default(),
            max_concurrency: config.max_concurrency,
            max_queued: config.max_queued,
            queued: std::sync::atomic::AtomicUsize::new(0),
            limits: config.limits,
            policy: Arc::new(config.policy),
            dispatcher: config.dispatcher,
            rate: Arc::new(RateLimiter::default()),
            metrics,
            load,
            cache: cache.clone(),
            stripper: tokio::sync::OnceCell::new(),
        })
    }

    /// The TypeScript stripper, loading it (from the artifact cache when
    /// possible) the first time.
    pub async fn typescript(&self) -> Result<Arc<TypeStripper>, String> {
        self.stripper
            .get_or_init(|| async {
                TypeStripper::load(&self.engine, &self.cache, crate::components::TS_STRIP)
                    .await
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            })
            .await
            .clone()
    }

    /// The engine every sandboxed component here runs in.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The precompiled-artifact cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// The server's limits; calls may only narrow them.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How the runtime component was loaded at start-up (cache hit, key, time).
    pub fn load_report(&self) -> &LoadReport {
        &self.load
    }

    /// Executions running now, and the most that may.
    pub fn occupancy(&self) -> (usize, usize) {
        (self.max_concurrency - self.permits.available_permits(), self.max_concurrency)
    }

    /// Runs one execution to its result. Never panics on guest behaviour:
    /// every way a guest can fail is a status.
    pub async fn execute(&self, exec: Execution) -> ExecutionResult {
        self.execute_traced(exec, &CancellationToken::new()).await.0
    }

    /// [`Sandbox::execute`], stopped (and its slot freed) as soon as
    /// `cancel` is cancelled; also gives what its tool calls came to.
    pub async fn execute_traced(&self, exec: Execution, cancel: &CancellationToken) -> (ExecutionResult, CallSummary) {
        let admitted = Instant::now();
        let (result, calls) = self.execute_inner(exec, cancel).await;
        self.metrics.record(result.status(), admitted.elapsed());
        (result, calls)
    }

    async fn execute_inner(&self, exec: Execution, cancel: &CancellationToken) -> (ExecutionResult, CallSummary) {
        let none = CallSummary::default;
        let limits = exec.limits;
        if exec.code.len() > limits.max_code_bytes {
            let result = ExecutionResult::ResourceLimit {
                limit: LimitKind::CodeSize,
                message: format!(
                    "code is {} bytes; the limit is {} bytes",
                    exec.code.len(),
                    limits.max_code_bytes
                ),
                stdout: String::new(),
                stderr: String::new(),
            };
            return (result, none());
        }
        let _permit = match self.admit(cancel).await {
            Ok(p) => p,
            Err(refused) => return (refused.into_result(), none()),
        };

        let started = Instant::now();
        let deadline = started + limits.timeout;
        let code = match exec.language {
            Language::JavaScript => exec.code,
            Language::TypeScript => match self.strip(&exec.code, &limits, started, deadline).await {
                Ok(js) => js,
                Err(result) => return (*result, none()),
            },
        };
        let request = RunRequest {
            source: code,
            context_json: exec.context.to_string(),
        };
        let tools = ToolsCtx::new(exec.id, self.policy.clone(), self.dispatcher.clone(), self.rate.clone());
        self.run_guest(&self.runtime, tools, &limits, started, cancel, async |store, instance, indices| {
            indices.load(&mut *store, instance)?.call_run(&mut *store, &request).await
        })
        .await
    }

    /// Waits for a free execution slot (executions, plugin calls and
    /// plugin builds share them), in a queue of bounded depth; a full
    /// queue, a cancelled wait or a closed sandbox is refused at once.
    ///
    /// With several principals ([`crate::principal::fair_share`]),
    /// the calling principal first waits for one of its own share's slots
    /// (not counted in the queue: its HTTP concurrency limit bounds those),
    /// so that it never holds more of the pool than its share.
    pub(crate) async fn admit(&self, cancel: &CancellationToken) -> Result<Slot<'_>, Refused> {
        let share = crate::principal::fair_share(self.max_concurrency);
        let mine = if share < self.max_concurrency {
            let own = {
                let mut shares = crate::sync::lock(&self.shares);
                shares
                    .entry(crate::principal::Principal::current())
                    .or_insert_with(|| Arc::new(Semaphore::new(share)))
                    .clone()
            };
            let permit = tokio::select! {
                p = own.acquire_owned() => p.map_err(|_| Refused::Closed)?,
                () = cancel.cancelled() => return Err(Refused::Cancelled),
            };
            Some(permit)
        } else {
            None
        };
        let pool = self.admit_pool(cancel).await?;
        Ok(Slot { _pool: pool, _mine: mine })
    }

    async fn admit_pool(&self, cancel: &CancellationToken) -> Result<tokio::sync::SemaphorePermit<'_>, Refused> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let waiting = Waiting::join(&self.queued, self.max_queued, &self.metrics).ok_or_else(|| Refused::Busy {
            running: self.max_concurrency,
            queued: self.queued.load(std::sync::atomic::Ordering::Relaxed),
            retry_after_ms: self.retry_after_ms(),
        })?;
        let permit = tokio::select! {
            p = self.permits.acquire() => p.map_err(|_| Refused::Closed),
            () = cancel.cancelled() => Err(Refused::Cancelled),
        };
        drop(waiting);
        permit
    }

    /// A retry hint for a busy answer: the time for the queue ahead to
    /// drain at the median pace of recent executions.
    fn retry_after_ms(&self) -> u64 {
        let typical = self.metrics.median_execution().unwrap_or(self.limits.timeout / 10);
        let rounds = (self.max_queued / self.max_concurrency.max(1)) as u32 + 1;
        (typical * rounds).as_millis().clamp(100, 60_000) as u64
    }

    /// Runs `call` against a fresh instance of `runner` in a fresh store
    /// under `limits`, with `tools` as the tool-call state, and turns how it
    /// ended into a result.
    async fn run_guest<I>(
        &self,
        runner: &Runner<ToolsCtx, I>,
        tools: ToolsCtx,
        limits: &Limits,
        started: Instant,
        cancel: &CancellationToken,
        call: impl AsyncFnOnce(&mut Store<GuestState<ToolsCtx>>, &Instance, &I) -> wasmtime::Result<RunOutcome>,
    ) -> (ExecutionResult, CallSummary) {
        let stdout = CappedPipe::new(limits.max_output_bytes);
        let stderr = CappedPipe::new(limits.max_output_bytes);
        let options = GuestOptions::new(limits.memory_bytes, started + limits.timeout)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        let state = match GuestState::new(options, tools) {
            Ok(state) => state,
            Err(e) => return (internal_error(&e.to_string()), CallSummary::default()),
        };
        let mut ended = runner.call(state, Budget::default(), Some(cancel), call).await;
        let calls = ended.state.host.finish();
        (Self::ended(ended.result, &ended.state, limits, started, &stdout, &stderr), calls)
    }

    /// How a guest call ended, as a result.
    fn ended(
        ran: Result<RunOutcome, Stop>,
        state: &GuestState<ToolsCtx>,
        limits: &Limits,
        started: Instant,
        stdout: &CappedPipe,
        stderr: &CappedPipe,
    ) -> ExecutionResult {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (stdout, stderr) = (stdout.text(), stderr.text());
        if let Err(Stop::Cancelled) = ran {
            return ExecutionResult::Cancelled { elapsed_ms: ms, stdout, stderr };
        }
        if let Some(reason) = &state.host.violation {
            return ExecutionResult::SecurityViolation { reason: reason.clone(), stdout, stderr };
        }
        match ran {
            Err(stop) => stopped(stop, limits, ms, stdout, stderr),
            Ok(RunOutcome::Success(json)) => success(json, limits, ms, stdout, stderr),
            Ok(RunOutcome::SyntaxError(e)) => js_error(ErrorType::Syntax, e, ms, stdout, stderr),
            Ok(RunOutcome::RuntimeError(_)) if state.guard.memory_denied => memory_limit(limits, stdout, stderr),
            Ok(RunOutcome::RuntimeError(e)) => js_error(ErrorType::Runtime, e, ms, stdout, stderr),
            // The guest's own refusal (a plugin granted no tools has no
            // import for the host to refuse); the host's came first above.
            Ok(RunOutcome::Denied(reason)) => {
                ExecutionResult::SecurityViolation { reason: outcome::bounded_message(reason), stdout, stderr }
            }
        }
    }
}

impl Sandbox {
    /// TypeScript to JavaScript inside the sandbox, within the execution's
    /// deadline and memory limit; a failure is the execution's result.
    async fn strip(
        &self,
        code: &str,
        limits: &Limits,
        started: Instant,
        deadline: Instant,
    ) -> Result<String, Box<ExecutionResult>> {
        let ms = || started.elapsed().as_secs_f64() * 1000.0;
        let stripper = self.typescript().await.map_err(|e| Box::new(internal_error(&e)))?;
        stripper.strip(code, limits.memory_bytes, deadline).await.map_err(|e| {
            Box::new(match e {
                StripError::Syntax(d) => ExecutionResult::Error {
                    error_type: ErrorType::Syntax,
                    message: outcome::bounded_message(format!(
                        "SyntaxError: {}",
                        d.first().map(|d| d.message.as_str()).unwrap_or("invalid TypeScript")
                    )),
                    line: d.first().map(|d| d.line),
                    column: d.first().map(|d| d.column),
                    stdout: String::new(),
                    stderr: String::new(),
                    execution_time_ms: ms(),
                },
                StripError::Timeout => {
                    ExecutionResult::Timeout { elapsed_ms: ms(), stdout: String::new(), stderr: String::new() }
                }
                StripError::Memory => memory_limit(limits, String::new(), String::new()),
                other => internal_error(&other.to_string()),
            })
        })
    }
}

fn success(json: Option<String>, limits: &Limits, ms: f64, stdout: String, stderr: String) -> ExecutionResult {
    let output = match json {
        None => None,
        Some(j) if j.len() > limits.max_output_bytes => {
            return ExecutionResult::ResourceLimit {
                limit: LimitKind::Output,
                message: format!(
                    "the returned value is {} bytes as JSON; the limit is {} bytes",
                    j.len(),
                    limits.max_output_bytes
                ),
                stdout,
                stderr,
            };
        }
        Some(j) => match serde_json::from_str::<Value>(&j) {
            Ok(v) => Some(v),
            Err(e) => {
                return ExecutionResult::Error {
                    error_type: ErrorType::Runtime,
                    message: format!("the result could not be read as JSON: {e}"),
                    line: None,
                    column: None,
                    stdout,
                    stderr,
                    execution_time_ms: ms,
                };
            }
        },
    };
    ExecutionResult::Success {
        output,
        stdout,
        stderr,
        execution_time_ms: ms,
    }
}

fn js_error(error_type: ErrorType, e: JsError, ms: f64, stdout: String, stderr: String) -> ExecutionResult {
    ExecutionResult::Error {
        error_type,
        message: outcome::bounded_message(e.message),
        line: e.line,
        column: e.column,
        stdout,
        stderr,
        execution_time_ms: ms,
    }
}

fn memory_limit(limits: &Limits, stdout: String, stderr: String) -> ExecutionResult {
    ExecutionResult::ResourceLimit {
        limit: LimitKind::Memory,
        message: format!("the script exceeded its memory limit of {} MiB", limits.memory_mb()),
        stdout,
        stderr,
    }
}

/// The result of a guest call that stopped without returning.
fn stopped(stop: Stop, limits: &Limits, ms: f64, stdout: String, stderr: String) -> ExecutionResult {
    let message = match stop {
        Stop::Cancelled => return ExecutionResult::Cancelled { elapsed_ms: ms, stdout, stderr },
        Stop::Deadline => return ExecutionResult::Timeout { elapsed_ms: ms, stdout, stderr },
        Stop::Memory => return memory_limit(limits, stdout, stderr),
        Stop::Denied(denied) => {
            return ExecutionResult::SecurityViolation {
                reason: format!("the sandbox used a capability it was not granted: {denied}"),
                stdout,
                stderr,
            };
        }
        Stop::Trap { trap: Some(Trap::StackOverflow), .. } => {
            "RangeError: Maximum call stack size exceeded (wasm stack exhausted)".to_string()
        }
        Stop::Trap { trap: Some(t), .. } => format!("InternalError: the sandbox trapped: {t}"),
        Stop::Trap { trap: None, detail } => format!("InternalError: {detail}"),
        other => format!("InternalError: {other}"),
    };
    ExecutionResult::Error {
        error_type: ErrorType::Runtime,
        message,
        line: None,
        column: None,
        stdout,
        stderr,
        execution_time_ms: ms,
    }
}

/// Why a call got no execution slot.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Every slot is taken and the wait queue is full.
    #[error("the server is busy: {running} executions are running and {queued} are waiting; retry in about {retry_after_ms} ms")]
    Busy {
        /// Executions running when the call was refused.
        running: usize,
        /// Calls waiting for a slot then.
        queued: usize,
        /// When a retry is likely to be admitted, in milliseconds.
        retry_after_ms: u64,
    },
    /// The client cancelled the request before a slot came free.
    #[error("the request was cancelled while it waited for a slot")]
    Cancelled,
    /// The sandbox is shutting down and admits nothing more.
    #[error("the sandbox is shutting down")]
    Closed,
}

impl Refused {
    /// The refusal as the call's result.
    pub fn into_result(self) -> ExecutionResult {
        match self {
            Refused::Busy { retry_after_ms, .. } => ExecutionResult::Busy { message: self.to_string(), retry_after_ms },
            Refused::Cancelled => ExecutionResult::Cancelled { elapsed_ms: 0.0, stdout: String::new(), stderr: String::new() },
            Refused::Closed => internal_error(&self.to_string()),
        }
    }
}

/// An execution slot of the pool (and of its principal's share, if
/// capped), given back on drop.
pub struct Slot<'a> {
    _pool: tokio::sync::SemaphorePermit<'a>,
    _mine: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A place in the queue for a slot, given back on drop (a cancelled wait
/// included).
struct Waiting<'a> {
    queued: &'a std::sync::atomic::AtomicUsize,
    metrics: &'a Metrics,
}

impl<'a> Waiting<'a> {
    fn join(queued: &'a std::sync::atomic::AtomicUsize, max: usize, metrics: &'a Metrics) -> Option<Self> {
        use std::sync::atomic::Ordering;
        queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q < max).then_some(q + 1)).ok()?;
        metrics.enqueue();
        Some(Self { queued, metrics })
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.metrics.dequeue();
    }
}

fn internal_error(message: &str) -> ExecutionResult {
    ExecutionResult::Error {
        error_type: ErrorType::Runtime,
        message: format!("InternalError: {message}"),
        line: None,
        column: None,
        stdout: String::new(),
        stderr: String::new(),
        execution_time_ms: 0.0,
    }
}
