//! The plugins directory end to end, against the real binary over MCP
//! stdio: it is untrusted input (a symlink to `/dev/zero` and a FIFO are
//! refused without reading them), tool plugins and analyzers share one
//! namespace without clobbering each other, a flat directory is migrated
//! once, and an analyzer's limits hold for the whole component instance
//! (many memories, aliased output, over-ceiling policies).
//!
//! Each test asserts a property (reply time, peak RSS from
//! `/proc/PID/status`, files unchanged), not the wording of a message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::learning::analysed;
use common::process::status_kib;
use common::{Server, err, ok, shared_cache, spawn, spawn_in, spawn_logged};
use serde_json::{Value, json};

fn components_dir() -> PathBuf {
    std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"))
}

fn component(built: &str) -> PathBuf {
    let p = components_dir().join(built);
    assert!(p.exists(), "{} is missing (run ./scripts/build-components.sh)", p.display());
    p
}

/// Runs `memory-mcp --plugins-dir PLUGINS <args>`.
fn cli(plugins: &Path, args: &[&str]) -> std::process::Output {
    let data = tempfile::tempdir().expect("data dir");
    std::process::Command::new(common::bin())
        .arg("--data-dir")
        .arg(data.path())
        .arg("--cache-dir")
        .arg(shared_cache())
        .arg("--plugins-dir")
        .arg(plugins)
        .args(args)
        .env_remove("MEMORY_MCP_CONFIG")
        .env("MEMORY_MCP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run memory-mcp")
}

/// Installs an analyzer with `memory-mcp analyzer install`.
fn install(plugins: &Path, built: &str, name: &str, policy: Option<&str>) {
    let file = component(built).display().to_string();
    let policy_file = policy.map(|p| {
        let f = tempfile::NamedTempFile::new().expect("policy file");
        std::fs::write(f.path(), p).expect("policy");
        f
    });
    let policy_path = policy_file.as_ref().map(|f| f.path().display().to_string());
    let mut args = vec!["analyzer", "install", file.as_str(), "--name", name];
    if let Some(p) = &policy_path {
        args.extend(["--policy", p.as_str()]);
    }
    let o = cli(plugins, &args);
    assert!(o.status.success(), "install {name}: {}", String::from_utf8_lossy(&o.stderr));
}

/// The server process whose command line names `data_dir` (the harness
/// does not hand out the child's pid).
fn server_pid(data_dir: &Path) -> u32 {
    let needle = data_dir.as_os_str().as_encoded_bytes().to_vec();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == needle.as_slice()) && cmdline.starts_with(common::bin().as_bytes()) {
            return pid;
        }
    }
    panic!("no memory-mcp process for {}", data_dir.display())
}


/// Resets the process's peak RSS (VmHWM) to its current RSS.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
}

fn analyzer<'a>(h: &'a Value, name: &str) -> Option<&'a Value> {
    h["learning"]["analyzers"].as_array().expect("analyzers").iter().find(|a| a["analyzer"] == name)
}

async fn episode(s: &Server, desc: &str) -> String {
    let r = ok(s, "create_episode", json!({"task_description": desc, "domain": "ops", "task_type": "code_generation"})).await;
    let id = r["episode_id"].as_str().expect("id").to_string();
    for (i, tool) in ["checkout", "deploy"].iter().enumerate() {
        ok(s, "add_episode_step", json!({"episode_id": id, "step_number": i + 1, "tool": tool, "action": "run", "result": {"type": "success"}, "latency_ms": 10})).await;
    }
    ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
    id
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).expect("read")))
        .collect();
    out.sort();
    out
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

/// Runs `return 1` and returns its execution id.
async fn ran(s: &Server) -> Value {
    let r = s.exec("return 1").await;
    assert_eq!(r["status"], "success", "{r}");
    r["execution_id"].clone()
}

/// A hand-written JS plugin manifest naming `NAME.wasm` and friends.
fn plugin_manifest(name: &str) -> String {
    let sum = |file: String| json!({"file": file, "bytes": 3, "blake3": blake3::hash(b"abc").to_hex().as_str()});
    json!({
        "format": 1, "name": name, "description": "d", "input_schema": {"type": "object"}, "language": "javascript",
        "world": "pure-plugin", "wasm": sum(format!("{name}.wasm")), "policy": sum(format!("{name}.policy.toml")),
        "source": sum(format!("{name}.js")), "built_by": "test"
    })
    .to_string()
}

#[tokio::test]
async fn symlinks_to_dev_zero_are_refused_at_once_with_bounded_rss() {
    let plugins = tempfile::tempdir().expect("plugins");
    let (tools, analyzers) = (plugins.path().join("tools"), plugins.path().join("analyzers"));
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::create_dir_all(&analyzers).expect("analyzers");
    // An analyzer whose component is /dev/zero, with a manifest.
    install(plugins.path(), "slow_steps.wasm", "zero", None);
    std::fs::remove_file(analyzers.join("zero.wasm")).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", analyzers.join("zero.wasm")).expect("symlink");
    // A tool plugin whose component and manifest are /dev/zero.
    std::fs::write(tools.join("zt.plugin.json"), plugin_manifest("zt")).expect("manifest");
    std::os::unix::fs::symlink("/dev/zero", tools.join("zt.wasm")).expect("symlink");
    std::os::unix::fs::symlink("/dev/zero", tools.join("zm.plugin.json")).expect("symlink");

    let started = Instant::now();
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let pid = server_pid(s.data_dir.path());
    let h = tokio::time::timeout(Duration::from_secs(60), analysed(&s, 0)).await.expect("analyzers loaded in time");
    let rejected = h["learning"]["rejected_plugins"].to_string();
    assert!(rejected.contains("zero.wasm"), "{rejected}");
    let listed = loop {
        let l = ok(&s, "list_plugins", json!({})).await;
        if l["refused"].as_array().is_some_and(|r| r.len() == 2) {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "plugins not synced: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed();
    let peak_mib = status_kib(pid, "VmHWM") / 1024;
    eprintln!("symlinks to /dev/zero: refused in {elapsed:?}, peak RSS {peak_mib} MiB: {}", listed["refused"]);
    assert!(peak_mib < 1024, "peak RSS {peak_mib} MiB");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // The server is fine.
    assert_eq!(s.exec("return 6 * 7").await["output"], 42);
}

#[tokio::test]
async fn a_fifo_in_the_plugins_directory_does_not_block_save_plugin() {
    let plugins = tempfile::tempdir().expect("plugins");
    let tools = plugins.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::create_dir_all(plugins.path().join("analyzers")).expect("analyzers");
    mkfifo(&tools.join("x.plugin.json"));
    mkfifo(&plugins.path().join("analyzers").join("y.analyzer.json"));
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let id = ran(&s).await;
    let started = Instant::now();
    let saved = tokio::time::timeout(
        Duration::from_secs(60),
        s.call("save_plugin", json!({"execution_id": id, "name": "one", "description": "returns 1"})),
    )
    .await
    .expect("save_plugin answered (a FIFO blocked it)");
    let elapsed = started.elapsed();
    eprintln!("save_plugin beside a FIFO answered in {elapsed:?}");
    assert_ne!(saved.is_error, Some(true), "{saved:?}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    let l = ok(&s, "list_plugins", json!({})).await;
    assert!(l["refused"].as_array().expect("refused").iter().any(|r| r["name"] == "x"), "{l}");
    // remove_plugin of the FIFO answers too, and the analyzers loaded.
    tokio::time::timeout(Duration::from_secs(10), s.call("remove_plugin", json!({"name": "x"}))).await.expect("remove answered");
    let h = tokio::time::timeout(Duration::from_secs(60), analysed(&s, 0)).await.expect("analyzers loaded");
    assert!(h["learning"]["rejected_plugins"].to_string().contains("y.wasm"), "{h}");
}

#[tokio::test]
async fn save_plugin_cannot_take_an_installed_analyzers_name() {
    let plugins = tempfile::tempdir().expect("plugins");
    install(plugins.path(), "slow_steps.wasm", "slow-steps", Some(include_str!("../plugins/slow-steps/slow-steps.policy.toml")));
    let before = snapshot(&plugins.path().join("analyzers"));
    assert_eq!(before.len(), 3, "wasm, policy, manifest");
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let id = ran(&s).await;
    err(&s, "save_plugin", json!({"execution_id": id, "name": "slow-steps", "description": "clobber", "replace": true})).await;
    err(&s, "remove_plugin", json!({"name": "slow-steps"})).await;
    assert_eq!(snapshot(&plugins.path().join("analyzers")), before, "the analyzer's files changed");
    // A tool plugin's name is refused to `analyzer install` in turn.
    ok(&s, "save_plugin", json!({"execution_id": id, "name": "one", "description": "returns 1"})).await;
    let o = cli(plugins.path(), &["analyzer", "install", component("slow_steps.wasm").to_str().expect("utf-8"), "--name", "one"]);
    assert!(!o.status.success());
    assert!(!plugins.path().join("analyzers/one.wasm").exists());
    // After a restart the analyzer still loads, unchanged.
    let data = s.data_dir;
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let s = spawn_in(data, &["--plugins-dir", &dir]).await;
    let h = analysed(&s, 0).await;
    let a = analyzer(&h, "slow-steps").unwrap_or_else(|| panic!("slow-steps did not load: {h}"));
    assert_eq!(a["component_blake3"], blake3::hash(&std::fs::read(component("slow_steps.wasm")).expect("wasm")).to_hex().as_str());
    assert_eq!(snapshot(&plugins.path().join("analyzers")), before);
}

#[tokio::test]
async fn a_flat_plugins_directory_is_migrated_once() {
    // Today's flat layout: an analyzer with its policy, a JS plugin built
    // by the CLI, and a symlink that must not be followed.
    let built = tempfile::tempdir().expect("build dir");
    let script = built.path().join("one.js");
    std::fs::write(&script, "return 1;").expect("script");
    let o = cli(built.path(), &["plugin", "build", script.to_str().expect("utf-8"), "--name", "one", "--description", "returns 1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let flat = tempfile::tempdir().expect("flat");
    for f in std::fs::read_dir(built.path().join("tools")).expect("tools").flatten() {
        std::fs::copy(f.path(), flat.path().join(f.file_name())).expect("copy");
    }
    let slow = std::fs::read(component("slow_steps.wasm")).expect("wasm");
    std::fs::write(flat.path().join("slow-steps.wasm"), &slow).expect("wasm");
    std::fs::write(flat.path().join("slow-steps.policy.toml"), include_str!("../plugins/slow-steps/slow-steps.policy.toml")).expect("policy");
    std::os::unix::fs::symlink("/dev/zero", flat.path().join("zero.wasm")).expect("symlink");

    let dir = flat.path().display().to_string();
    let log = flat.path().with_extension("log");
    let s = spawn_logged(tempfile::tempdir().expect("data"), &["--plugins-dir", &dir], &[], &log).await;
    let h = analysed(&s, 0).await;
    let a = analyzer(&h, "slow-steps").unwrap_or_else(|| panic!("migrated analyzer did not load: {h}"));
    assert_eq!(a["component_blake3"], blake3::hash(&slow).to_hex().as_str());
    let started = Instant::now();
    while !ok(&s, "list_plugins", json!({})).await["plugins"].to_string().contains("\"one\"") {
        assert!(started.elapsed() < Duration::from_secs(60), "migrated plugin did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok(&s, "one", json!({})).await["output"], 1);
    assert!(flat.path().join("analyzers/slow-steps.analyzer.json").is_file());
    assert!(flat.path().join("tools/one.plugin.json").is_file());
    assert!(!flat.path().join("slow-steps.wasm").exists() && !flat.path().join("one.wasm").exists());
    assert!(flat.path().join("zero.wasm").is_symlink(), "the symlink is left where it was");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert_eq!(logged.lines().filter(|l| l.contains("migrated")).count(), 1, "{logged}");

    // Once: an analyzer dropped in at the top later is not migrated, and
    // one dropped into analyzers/ without a manifest is refused.
    std::fs::write(flat.path().join("late.wasm"), &slow).expect("late");
    std::fs::write(flat.path().join("analyzers/loose.wasm"), &slow).expect("loose");
    let data = s.data_dir;
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let s = spawn_logged(data, &["--plugins-dir", &dir], &[], &log).await;
    let h = analysed(&s, 0).await;
    assert_eq!(h["learning"]["analyzers"].as_array().expect("analyzers").len(), 2, "builtin and slow-steps only: {h}");
    assert!(h["learning"]["rejected_plugins"].to_string().contains("loose.wasm"), "{h}");
    assert!(flat.path().join("late.wasm").is_file() && !flat.path().join("analyzers/late.wasm").exists());
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.lines().any(|l| l.contains("migrated the flat")), "migrated twice: {logged}");
}

#[tokio::test]
async fn an_analyzer_of_many_memories_is_held_to_its_memory_limit() {
    let plugins = tempfile::tempdir().expect("plugins");
    // Four memories: each under 16 MiB, together over it.
    install(plugins.path(), "hostile_memories.wasm", "memories", Some("version = 1\n[limits]\nmemory_mb = 16\n"));
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    episode(&s, "grow every memory").await;
    let h = analysed(&s, 1).await;
    let a = analyzer(&h, "many-memories").unwrap_or_else(|| panic!("did not load: {h}"));
    assert_eq!((a["batches_ok"].as_u64(), a["batches_failed"].as_u64()), (Some(0), Some(1)), "{a}");
    let found = ok(&s, "analyze_patterns", json!({"task_type": "code_generation", "limit": 100, "min_success_rate": 0.0})).await;
    assert!(!found.to_string().contains("all-granted"), "every memory grew past the limit: {found}");
    assert_eq!(s.exec("return 6 * 7").await["output"], 42);
}

#[tokio::test]
async fn aliased_output_is_refused_before_the_host_copies_it() {
    let plugins = tempfile::tempdir().expect("plugins");
    install(plugins.path(), "hostile_aliased.wasm", "aliased", None);
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    analysed(&s, 0).await;
    let pid = server_pid(s.data_dir.path());
    // Peak RSS growth per batch (the server's own allocations make it
    // noisy by a few tens of MiB; copying the aliases made it 126 MiB or
    // more, every batch).
    let mut growth = Vec::new();
    for i in 0..5 {
        let rss = status_kib(pid, "VmRSS");
        reset_peak(pid);
        episode(&s, &format!("alias {i}")).await;
        let h = analysed(&s, i + 1).await;
        growth.push(status_kib(pid, "VmHWM").saturating_sub(rss) / 1024);
        let a = analyzer(&h, "aliased-output").unwrap_or_else(|| panic!("did not load: {h}"));
        assert_eq!(a["batches_failed"].as_u64(), Some(i + 1), "{a}");
    }
    growth.sort();
    eprintln!("aliased output: peak RSS growth per batch, sorted: {growth:?} MiB");
    assert!(growth[2] < 64, "the host copied the aliased strings: peak RSS grew {growth:?} MiB");
}

#[tokio::test]
async fn an_analyzer_policy_over_the_ceilings_is_clamped() {
    let plugins = tempfile::tempdir().expect("plugins");
    let greedy = "version = 1\n[limits]\nfuel = 18446744073709551615\nmemory_mb = 4096\ntimeout_ms = 9999999999\nmax_patterns = 4000000000\nmax_output_bytes = 18446744073709551615\n";
    install(plugins.path(), "slow_steps.wasm", "greedy", Some(greedy));
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let h = analysed(&s, 0).await;
    let l = &analyzer(&h, "slow-steps").unwrap_or_else(|| panic!("did not load: {h}"))["limits"];
    let ceilings = [("fuel", 20_000_000_000u64), ("memory_mb", 512), ("timeout_ms", 60_000), ("max_patterns", 10_000), ("max_output_bytes", 64 << 20)];
    for (field, max) in ceilings {
        let v = l[field].as_u64().unwrap_or(u64::MAX);
        assert!(v <= max, "{field} = {v} is over the ceiling {max}: {l}");
    }
}

/// Outside review of issue 14: nothing bounded how many files the plugins
/// directory may hold; 20,000 junk manifests made `list_plugins` a 5.5 MB
/// reply, each verified at every sync. A server considers at most 1,000
/// plugins (the first by name); the rest are ignored with a warning.
#[tokio::test]
async fn thousands_of_manifests_are_held_to_a_bounded_number() {
    let plugins = tempfile::tempdir().expect("plugins");
    let tools = plugins.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::create_dir_all(plugins.path().join("analyzers")).expect("analyzers");
    for i in 0..3000 {
        std::fs::write(tools.join(format!("p{i:05}.plugin.json")), "{}").expect("manifest");
    }
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let started = Instant::now();
    let listed = loop {
        let l = ok(&s, "list_plugins", json!({})).await;
        if l["refused"].as_array().is_some_and(|r| r.len() >= 1000) {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "plugins not synced: {} refused", l["refused"].as_array().map_or(0, Vec::len));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refused = listed["refused"].as_array().map_or(0, Vec::len);
    let bytes = listed.to_string().len();
    eprintln!("3,000 manifests: {refused} considered, list_plugins {bytes} bytes");
    assert!(refused <= 1000, "{refused} manifests were verified and listed");
    assert!(bytes < 1000 * 512, "list_plugins is {bytes} bytes");
    assert_eq!(s.exec("return 6 * 7").await["output"], 42);
}

/// Outside review of issue 14: `tools/` and `analyzers/` were followed when
/// they were symlinks, so `save_plugin` wrote its files (the agent's code
/// among them) wherever the link pointed, and plugins were loaded from
/// there. Neither is read nor written through a symlink now.
#[tokio::test]
async fn symlinked_subdirectories_are_neither_read_nor_written() {
    // A working plugin and analyzer, elsewhere.
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    let script = elsewhere.path().join("one.js");
    std::fs::write(&script, "return 1;").expect("script");
    let o = cli(elsewhere.path(), &["plugin", "build", script.to_str().expect("utf-8"), "--name", "one", "--description", "returns 1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    install(elsewhere.path(), "slow_steps.wasm", "slow-steps", None);
    let (their_tools, their_analyzers) = (elsewhere.path().join("tools"), elsewhere.path().join("analyzers"));
    let before = (snapshot(&their_tools), snapshot(&their_analyzers));

    let plugins = tempfile::tempdir().expect("plugins");
    std::os::unix::fs::symlink(&their_tools, plugins.path().join("tools")).expect("symlink");
    std::os::unix::fs::symlink(&their_analyzers, plugins.path().join("analyzers")).expect("symlink");
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let h = analysed(&s, 0).await;
    assert!(analyzer(&h, "slow-steps").is_none(), "an analyzer was loaded through a symlink: {h}");
    let id = ran(&s).await;
    let saved = s.call("save_plugin", json!({"execution_id": id, "name": "two", "description": "returns 1"})).await;
    assert_eq!(saved.is_error, Some(true), "{saved:?}");
    let removed = s.call("remove_plugin", json!({"name": "one"})).await;
    assert_eq!(removed.is_error, Some(true), "{removed:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = ok(&s, "list_plugins", json!({})).await;
    assert!(!listed["plugins"].to_string().contains("\"one\""), "a plugin was loaded through a symlink: {listed}");
    assert_eq!((snapshot(&their_tools), snapshot(&their_analyzers)), before, "files changed through a symlink");
    assert_eq!(s.exec("return 6 * 7").await["output"], 42);
}

/// Outside review of issue 14: a plugin's input schema and description are
/// in every session's `tools/list`, and nothing bounded them but the
/// 1 MiB manifest cap: `save_plugin` took a 100 KB schema, and a manifest
/// edited in the directory to carry a 200 KB one loaded. Both are refused
/// now (64 KiB of schema, 8 KiB of description), and nothing is written.
#[tokio::test]
async fn oversized_schemas_and_descriptions_never_reach_tools_list() {
    let plugins = tempfile::tempdir().expect("plugins");
    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let id = ran(&s).await;
    let tools = plugins.path().join("tools");
    let wide = json!({"type": "object", "description": "d".repeat(100_000)});
    let r = s.call("save_plugin", json!({"execution_id": id, "name": "wide", "description": "d", "input_schema": wide})).await;
    assert_eq!(r.is_error, Some(true), "a 100 KB schema was saved");
    let r = s.call("save_plugin", json!({"execution_id": id, "name": "wordy", "description": "w".repeat(20_000)})).await;
    assert_eq!(r.is_error, Some(true), "a 20 KB description was saved");
    assert!(std::fs::read_dir(&tools).map(|d| d.count()).unwrap_or(0) == 0, "files were written");

    // A plugin edited in the directory to carry a 200 KB schema (the
    // manifest holds no checksum of itself) is refused at load.
    ok(&s, "save_plugin", json!({"execution_id": id, "name": "small", "description": "returns 1"})).await;
    let path = tools.join("small.plugin.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
    m["input_schema"]["description"] = json!("e".repeat(200_000));
    std::fs::write(&path, m.to_string()).expect("edit");
    let started = Instant::now();
    loop {
        let l = ok(&s, "list_plugins", json!({})).await;
        if l["refused"].as_array().is_some_and(|r| r.iter().any(|p| p["name"] == "small")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the edited manifest was not refused: {}", l.to_string().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = s.client.list_all_tools().await.expect("tools/list");
    let bytes = serde_json::to_string(&listed).map(|t| t.len()).unwrap_or(usize::MAX);
    assert!(bytes < 100_000, "tools/list is {bytes} bytes");
}

/// An installed analyzer is held to its manifest as a JS plugin is: a
/// component or policy changed after `analyzer install` is refused at the
/// server's start and by `analyzer verify`, with the file and the reason,
/// and a component without a manifest is refused with the command that
/// installs it. Installing again (`--force`) is the fix, and it loads.
#[tokio::test]
async fn an_analyzer_changed_after_install_is_refused_until_installed_again() {
    let plugins = tempfile::tempdir().expect("plugins");
    let policy = include_str!("../plugins/slow-steps/slow-steps.policy.toml");
    install(plugins.path(), "slow_steps.wasm", "slow-steps", Some(policy));
    install(plugins.path(), "slow_steps.wasm", "slow-copy", Some(policy));
    let analyzers = plugins.path().join("analyzers");
    let mut wasm = std::fs::read(analyzers.join("slow-steps.wasm")).expect("wasm");
    wasm.push(0);
    std::fs::write(analyzers.join("slow-steps.wasm"), &wasm).expect("tamper with the component");
    std::fs::write(analyzers.join("slow-copy.policy.toml"), policy.replace("version = 1", "version = 1\n[grants]\nstore = true"))
        .expect("tamper with the policy");
    std::fs::copy(component("slow_steps.wasm"), analyzers.join("dropped.wasm")).expect("drop one in");

    let o = cli(plugins.path(), &["analyzer", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "verify passed: {out}");
    for (name, file) in [("slow-steps", "slow-steps.wasm"), ("slow-copy", "slow-copy.policy.toml")] {
        let line = out.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("{name} not verified: {out}"));
        assert!(line.contains("refused") && line.contains(file) && line.contains("checksum"), "{line}");
    }
    assert!(out.lines().any(|l| l.starts_with("dropped:") && l.contains("memory-mcp analyzer install")), "{out}");

    let dir = plugins.path().display().to_string();
    let s = spawn(&["--plugins-dir", &dir]).await;
    let h = analysed(&s, 0).await;
    assert_eq!(h["learning"]["analyzers"].as_array().expect("analyzers").len(), 1, "only the built-in loads: {h}");
    let rejected = h["learning"]["rejected_plugins"].as_array().expect("rejected").clone();
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|r| r["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .and_then(|r| r["reason"].as_str())
            .unwrap_or_else(|| panic!("{file} was not refused: {rejected:?}"))
            .to_string()
    };
    assert!(reason("slow-steps.wasm").contains("slow-steps.wasm does not match its checksum"), "{}", reason("slow-steps.wasm"));
    assert!(reason("slow-copy.wasm").contains("slow-copy.policy.toml does not match its checksum"), "{}", reason("slow-copy.wasm"));
    assert!(reason("dropped.wasm").contains("memory-mcp analyzer install"), "{}", reason("dropped.wasm"));

    // The fix: install it again.
    let data = s.data_dir;
    s.client.cancel().await.expect("stop the server and wait for it to exit");
    let file = component("slow_steps.wasm").display().to_string();
    let policy_file = tempfile::NamedTempFile::new().expect("policy file");
    std::fs::write(policy_file.path(), policy).expect("policy");
    let p = policy_file.path().display().to_string();
    let o = cli(plugins.path(), &["analyzer", "install", &file, "--name", "slow-steps", "--policy", &p, "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(cli(plugins.path(), &["analyzer", "verify", "slow-steps"]).status.success());
    let s = spawn_in(data, &["--plugins-dir", &dir]).await;
    let h = analysed(&s, 0).await;
    assert!(analyzer(&h, "slow-steps").is_some(), "slow-steps did not load after a new install: {h}");
}
