//! The one guest state type: everything a single call's `Store` owns,
//! made from [`GuestOptions`]. A fresh one is made per call, so nothing
//! leaks between runs.
//!
//! WASI grants nothing by default: no environment, no arguments, no
//! preopened directories, no sockets; stdin is empty and output is
//! discarded unless the options capture it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::guard::MemoryGuard;
use super::http::HttpGrant;
use super::output::CappedPipe;

/// The data of one call's store. `H` is the embedder's own host-interface
/// state (code mode's tool calls, an analyzer's episode reads); `()` when
/// the component is granted none.
pub struct GuestState<H = ()> {
    /// The WASI context (clocks, randomness, stdio, preopens).
    pub wasi: WasiCtx,
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// The memory limit, and whether it was hit.
    pub guard: MemoryGuard,
    /// The embedder's host-interface state.
    pub host: H,
    /// When the call's wall-clock budget runs out (checked every epoch tick).
    pub deadline: Instant,
    /// The `wasi:http` context, used only when `wasi:http` is linked.
    pub http_ctx: WasiHttpCtx,
    /// Where outgoing HTTP may go, when `wasi:http` is linked at all.
    pub http: HttpGrant,
}

/// What a guest is given. Everything not asked for is denied.
#[derive(Debug, Clone)]
pub struct GuestOptions {
    memory_bytes: u64,
    deadline: Instant,
    stdin: Option<Vec<u8>>,
    stdout: Option<CappedPipe>,
    stderr: Option<CappedPipe>,
    http: HttpGrant,
    preopen: Option<(PathBuf, String)>,
    deterministic: bool,
}

/// The guest's state could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The directory to preopen could not be opened.
    #[error("opening {dir} for the guest: {message}")]
    Preopen {
        /// The host directory.
        dir: PathBuf,
        /// Why it could not be opened.
        message: String,
    },
}

impl GuestOptions {
    /// At most `memory_bytes` of linear memory (all memories together),
    /// until `deadline`; nothing else granted.
    pub fn new(memory_bytes: u64, deadline: Instant) -> Self {
        Self {
            memory_bytes,
            deadline,
            stdin: None,
            stdout: None,
            stderr: None,
            http: HttpGrant::none(),
            preopen: None,
            deterministic: false,
        }
    }

    /// The options a trusted component is snapshotted under: 1 GiB and a
    /// minute, nothing else.
    pub fn for_snapshot() -> Self {
        Self::new(1 << 30, Instant::now() + Duration::from_secs(60))
    }

    /// `bytes` as the guest's stdin.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Captures stdout into `pipe`.
    pub fn stdout(mut self, pipe: CappedPipe) -> Self {
        self.stdout = Some(pipe);
        self
    }

    /// Captures stderr into `pipe`.
    pub fn stderr(mut self, pipe: CappedPipe) -> Self {
        self.stderr = Some(pipe);
        self
    }

    /// Outgoing HTTP as `grant` allows (when `wasi:http` is linked).
    pub fn http(mut self, grant: HttpGrant) -> Self {
        self.http = grant;
        self
    }

    /// `dir` preopened read-only as `guest_path`, the one directory the
    /// guest can see (when `wasi:filesystem` is linked).
    pub fn preopen_read_only(mut self, dir: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        self.preopen = Some((dir.into(), guest_path.into()));
        self
    }

    /// Stopped clocks and seeded randomness, so the same input always
    /// gives the same result (a plugin's snapshot depends on nothing
    /// else).
    pub fn deterministic(mut self) -> Self {
        self.deterministic = true;
        self
    }

    /// The memory limit, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl<H> GuestState<H> {
    /// A fresh state as `options` say, with `host` as the embedder's
    /// host-interface state.
    pub fn new(options: GuestOptions, host: H) -> Result<Self, GuestError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(options.stdout.unwrap_or_else(|| CappedPipe::new(0)));
        wasi.stderr(options.stderr.unwrap_or_else(|| CappedPipe::new(0)));
        if let Some(bytes) = options.stdin {
            wasi.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(bytes));
        }
        if let Some((dir, guest_path)) = &options.preopen {
            wasi.preopened_dir(dir, guest_path, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| GuestError::Preopen { dir: dir.clone(), message: e.to_string() })?;
        }
        if options.deterministic {
            use rand10::SeedableRng as _;
            wasi.wall_clock(super::clock::StoppedClock)
                .monotonic_clock(super::clock::StoppedClock)
                .secure_random(rand10::rngs::StdRng::seed_from_u64(0))
                .insecure_random(rand10::rngs::StdRng::seed_from_u64(1))
                .insecure_random_seed(2);
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            guard: MemoryGuard::new(options.memory_bytes),
            host,
            deadline: options.deadline,
            http_ctx: WasiHttpCtx::new(),
            http: options.http,
        })
    }
}

impl<H: Send + 'static> WasiView for GuestState<H> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl<H: Send + 'static> WasiHttpView for GuestState<H> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}
