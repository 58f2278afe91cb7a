//! A fuzz target for the MCP layer (issue 15): proptest drives sequences
//! of frames (arbitrary bytes, broken JSON-RPC, and at least a third valid
//! `tools/call` requests with hostile arguments) through the stdio framing
//! filter into the in-process server, with its real sandbox, stores and
//! tool routers.
//!
//! Each case is one session. It must end with every request that has an
//! id answered (except those the fuzzer cancelled), every line on the
//! output a JSON-RPC message, and no panic caught anywhere.
//!
//! ```sh
//! # the quick run (part of scripts/test.sh): 3,000 frames
//! cargo test --release -p memory-mcp --test fuzz_mcp
//! # the long run: 100,000 frames, another seed
//! FUZZ_FRAMES=100000 FUZZ_SEED=7 cargo test --release -p memory-mcp --test fuzz_mcp -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "../host/benches/common/in_process.rs"]
mod in_process;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memory_mcp::mcp::{self, Server, filter_frames};
use memory_mcp::sandbox::{Profile, ToolPolicy};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const FRAMES_PER_SESSION: usize = 200;
/// The fuzz server's frame limit: small, so oversize frames are cheap.
const MAX_FRAME: usize = 256 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator, seeded per frame by proptest.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn string(&mut self) -> String {
        match self.below(8) {
            0 => String::new(),
            1 => "x".repeat(self.below(100_000) as usize),
            2 => "é🦀\u{0}\u{202e}\u{fffd}".repeat(self.below(50) as usize),
            3 => self.pick(&["*", "memory.*", "../../etc/passwd", "' OR 1=1", "%s%n", "\\u0000", "null"]).to_string(),
            4 => uuid::Uuid::now_v7().to_string(),
            _ => (0..self.below(40)).map(|_| char::from(b'a' + self.below(26) as u8)).collect(),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 4 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => json!(self.next() as i64),
            3 => json!(self.pick(&[0.5, -1.0, 1e308, -1e-308, 4_294_967_296.0, 18_446_744_073_709_551_616.0])),
            4 | 5 => json!(self.string()),
            6 => Value::Array((0..self.below(6)).map(|_| self.value(depth + 1)).collect()),
            7 => Value::Object((0..self.below(6)).map(|_| (self.string(), self.value(depth + 1))).collect()),
            _ => {
                let deep = self.below(2_000) as usize;
                serde_json::from_str(&format!("{}{}", "[".repeat(deep), "]".repeat(deep))).unwrap_or(Value::Null)
            }
        }
    }

    /// Arguments for `tool`: its schema's properties with values of any
    /// type, some missing, some extra.
    fn arguments(&mut self, tool: &rmcp::model::Tool) -> Value {
        if self.chance(10) {
            return self.value(0);
        }
        let mut args = Map::new();
        if let Some(Value::Object(props)) = tool.input_schema.get("properties") {
            for name in props.keys() {
                if self.chance(70) {
                    let v = self.value(0);
                    args.insert(name.clone(), v);
                }
            }
        }
        if self.chance(10) {
            let (k, v) = (self.string(), self.value(0));
            args.insert(k, v);
        }
        if tool.name == "execute_agent_code" {
            let code = self.pick(CODE).to_string();
            args.insert("code".into(), json!(code));
            args.insert("timeout_ms".into(), json!(1 + self.below(50)));
            if self.chance(50) {
                args.insert("memory_mb".into(), json!(1 + self.below(64)));
            }
            if self.chance(30) {
                args.insert("language".into(), json!(self.pick(&["javascript", "typescript", "python"])));
            }
        }
        Value::Object(args)
    }
}

/// Hostile code for `execute_agent_code`.
const CODE: &[&str] = &[
    "return 1",
    "while (true) {}",
    "const a = []; while (true) a.push(new Array(1e6).fill(1))",
    "return 'x'.repeat(1e7)",
    "throw new Error('boom')",
    "await new Promise(() => {})",
    "return await tools.memory.query_memory({query: 'x'})",
    "for (let i = 0; i < 100; i++) { try { await tools['s'.repeat(70000)].t({}) } catch (e) {} } return 1",
    "}); while (true) {} (async function () {",
    "return context",
    "console.log('x'.repeat(2e6)); return 1",
    "function f() { return f() } return f()",
    "const x: number = 41; return x + 1",
    "\u{0}\u{1}\u{2}",
    "return JSON.parse('['.repeat(100000))",
];

/// One frame, and the id a reply is owed to (if any).
fn frame(g: &mut Gen, tools: &[rmcp::model::Tool], next_id: &mut u64, sent: &[u64]) -> (Vec<u8>, Option<u64>, Option<u64>) {
    let owed = |id: &mut u64| {
        *id += 1;
        *id
    };
    let kind = g.below(100);
    if kind < 40 {
        // Code mode is where most of the machinery is: a third of the calls.
        let tool = match tools.iter().find(|t| t.name == "execute_agent_code") {
            Some(exec) if g.chance(33) => exec,
            _ => g.pick(tools),
        };
        let args = g.arguments(tool);
        let id = owed(next_id);
        let v = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool.name, "arguments": args}});
        return (v.to_string().into_bytes(), Some(id), None);
    }
    if kind < 55 {
        let id = owed(next_id);
        let (method, params) = match g.below(10) {
            0 => ("ping", json!({})),
            1 => ("tools/list", json!({})),
            2 => ("resources/list", json!({})),
            3 => ("resources/templates/list", json!({})),
            4 => ("resources/read", json!({"uri": g.string()})),
            5 => ("prompts/list", json!({})),
            6 => ("no/such/method", g.value(0)),
            7 => ("tools/call", json!({"name": g.string(), "arguments": {}})),
            8 => ("logging/setLevel", json!({"level": g.string()})),
            _ => ("completion/complete", g.value(0)),
        };
        let mut v = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if params.is_object() {
            v["params"] = params;
        }
        return (v.to_string().into_bytes(), Some(id), None);
    }
    if kind < 63 {
        if !sent.is_empty() && g.chance(70) {
            let target = *g.pick(sent);
            let v = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": target}});
            return (v.to_string().into_bytes(), None, Some(target));
        }
        let v = json!({"jsonrpc": "2.0", "method": g.pick(&["notifications/initialized", "notifications/progress", "notifications/x"]), "params": g.value(0)});
        return (v.to_string().into_bytes(), None, None);
    }
    let bytes = match g.below(12) {
        0 => (0..g.below(300)).map(|_| g.next() as u8).filter(|b| *b != b'\n').collect(),
        1 => {
            let v = json!({"jsonrpc": "2.0", "id": "bad", "method": "tools/call", "params": {"name": "health_check"}}).to_string();
            v.as_bytes()[..g.below(v.len() as u64) as usize].to_vec()
        }
        2 => g.value(0).to_string().into_bytes(),
        3 => format!("[{}]", json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).into_bytes(),
        4 => json!({"id": "bad", "method": "ping"}).to_string().into_bytes(),
        5 => json!({"jsonrpc": "2.0", "id": g.pick(&[json!({}), json!([1]), json!(true), json!(1.5)]), "method": "ping"}).to_string().into_bytes(),
        6 => json!({"jsonrpc": "2.0", "id": "bad", "method": "tools/call", "params": 3}).to_string().into_bytes(),
        7 => {
            let mut v = br#"{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"health_check","arguments":{"x":""#.to_vec();
            v.extend(std::iter::repeat_n(b'y', MAX_FRAME + 10));
            v
        }
        8 => {
            let n = 1 + g.below(100_000) as usize;
            format!(r#"{{"jsonrpc":"2.0","id":"deep","method":"ping","params":{{"a":{}{}}}}}"#, "[".repeat(n), "]".repeat(n)).into_bytes()
        }
        9 => format!("{} trailing", json!({"jsonrpc": "2.0", "id": "bad", "method": "ping"})).into_bytes(),
        10 => b"   \t ".to_vec(),
        _ => json!({"jsonrpc": "1.0", "id": "bad", "method": "ping"}).to_string().into_bytes(),
    };
    (bytes, None, None)
}

struct Totals {
    frames: AtomicU64,
    requests: AtomicU64,
    answered: AtomicU64,
    cancelled: AtomicU64,
}

/// The server every session talks to (one process-lifetime server, as in
/// production; each session is a new MCP connection to it).
async fn wired() -> Result<in_process::Wired, String> {
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifact-cache");
    let mut opts = in_process::Options::new(ToolPolicy { allow: vec!["memory.*".into()], ..ToolPolicy::default() }, BTreeMap::new());
    opts.profile = Profile::Restrictive;
    opts.cache = Some(cache);
    in_process::wire(opts).await.map_err(|e| format!("{e:#}"))
}

async fn session(
    server: Server,
    seeds: Vec<u64>,
    tools: Arc<Vec<rmcp::model::Tool>>,
    totals: Arc<Totals>,
) -> Result<(), String> {
    let t0 = Instant::now();
    let wired_in = t0.elapsed();
    let (client_w, server_r) = tokio::io::duplex(1 << 20);
    let (server_w, client_r) = tokio::io::duplex(1 << 20);
    let (rmcp_in, rmcp_out) = filter_frames(server_r, server_w, MAX_FRAME);
    let running = tokio::spawn(mcp::serve(server, (rmcp_in, rmcp_out)));

    let owed = Arc::new(std::sync::Mutex::new(HashSet::<u64>::new()));
    let bad_lines = Arc::new(AtomicU64::new(0));
    let reader = {
        let (owed, bad, totals) = (owed.clone(), bad_lines.clone(), totals.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(client_r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v["jsonrpc"] == "2.0" => {
                        if let Some(id) = v["id"].as_u64()
                            && v.get("method").is_none()
                            && owed.lock().expect("lock").remove(&id)
                        {
                            totals.answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let mut w = client_w;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}});
    for line in [init, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})] {
        w.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| e.to_string())?;
    }
    let mut next_id = 0;
    let mut sent = Vec::new();
    for seed in seeds {
        let mut g = Gen(seed);
        let (bytes, id, cancels) = frame(&mut g, &tools, &mut next_id, &sent);
        if let Some(id) = id {
            owed.lock().expect("lock").insert(id);
            sent.push(id);
            totals.requests.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(target) = cancels
            && owed.lock().expect("lock").remove(&target)
        {
            totals.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        totals.frames.fetch_add(1, Ordering::Relaxed);
        w.write_all(&bytes).await.map_err(|e| format!("the server stopped reading: {e}"))?;
        w.write_all(b"\n").await.map_err(|e| format!("the server stopped reading: {e}"))?;
    }
    let written_in = t0.elapsed();
    // Every owed reply must come, within the longest an execution may take.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !owed.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing: Vec<u64> = owed.lock().expect("lock").iter().copied().collect();
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        eprintln!("session: wired in {wired_in:?}, written by {written_in:?}, answered by {:?}", t0.elapsed());
    }
    drop(w);
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    running.abort();
    if !missing.is_empty() {
        return Err(format!("{} requests were never answered: {missing:?}", missing.len()));
    }
    let bad = bad_lines.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(format!("{bad} output lines were not JSON-RPC"));
    }
    Ok(())
}

#[test]
fn fuzz_the_mcp_layer() {
    let frames = env_u64("FUZZ_FRAMES", 3_000);
    let seed = env_u64("FUZZ_SEED", 1);
    let sessions = frames.div_ceil(FRAMES_PER_SESSION as u64) as u32;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let tools = Arc::new(Server::tool_list());
    let totals = Arc::new(Totals {
        frames: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        cancelled: AtomicU64::new(0),
    });
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases: sessions, failure_persistence: None, max_shrink_iters: 32, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let started = Instant::now();
    let wired = runtime.block_on(wired()).expect("the in-process server");
    let result = runner.run(&prop::collection::vec(any::<u64>(), FRAMES_PER_SESSION), |seeds| {
        runtime
            .block_on(session(wired.server.clone(), seeds, tools.clone(), totals.clone()))
            .map_err(TestCaseError::fail)
    });
    let panics = memory_mcp::mcp::panics_caught();
    eprintln!(
        "fuzz: {} frames in {sessions} sessions (seed {seed}) in {:.1} s: {} requests, {} answered, {} cancelled by the fuzzer, {panics} panics caught",
        totals.frames.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        totals.requests.load(Ordering::Relaxed),
        totals.answered.load(Ordering::Relaxed),
        totals.cancelled.load(Ordering::Relaxed),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(panics, 0, "a handler panicked (caught and answered, but a bug)");
}
