//! Reading a server process's counters from `/proc`, for tests that
//! assert what a request cost (RSS, bytes written).
//!
//! ```ignore
//! let rss_kib = common::process::field(pid, "status", "VmRSS");
//! let written = common::process::field(pid, "io", "wchar");
//! ```

/// A `/proc/<pid>/<file>` field, in its unit (kB for `status`, bytes for
/// `io`).
pub fn field(pid: u32, file: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/{file}"))
}

/// A `/proc/<pid>/status` field, in KiB.
pub fn status_kib(pid: u32, name: &str) -> u64 {
    field(pid, "status", name)
}
