//! Reading a file from the plugins directory, which is untrusted input:
//! anyone who can drop a file there must not be able to hang or exhaust
//! the server.
//!
//! - Only regular files are read. A symlink (`x.wasm -> /dev/zero`), a
//!   FIFO, a socket, a device or a directory is refused with the reason,
//!   before anything is opened.
//! - The open is non-blocking and does not follow symlinks (`O_NONBLOCK |
//!   O_NOFOLLOW`), so a FIFO swapped in after the check cannot block it,
//!   and the opened descriptor is checked again (`fstat`) before reading.
//! - Each kind of file has a size cap, checked before reading, and the read
//!   itself stops one byte past the cap, so a file that grows meanwhile
//!   cannot make it longer.
//!
//! ```no_run
//! use memory_mcp::plugins::{read_untrusted, MAX_POLICY_BYTES};
//! let text = read_untrusted(std::path::Path::new("plugins/x.policy.toml"), MAX_POLICY_BYTES)?;
//! # Ok::<(), memory_mcp::plugins::ReadError>(())
//! ```

use std::fs::{File, FileType, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// The largest component read (a JS plugin with its snapshot is a few MB).
pub const MAX_WASM_BYTES: u64 = 64 << 20;
/// The largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 64 << 10;
/// The largest manifest read (it holds the tool's input schema).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The largest plugin source read (what the builder accepts).
pub const MAX_SOURCE_BYTES: u64 = 1024 * 1024;

/// Why a file was not read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file does not exist.
    #[error("{0} is missing")]
    Missing(String),
    /// The path is a symlink, directory, FIFO or the like.
    #[error("{path} is a {kind}, not a regular file; only regular files are read from the plugins directory")]
    NotRegular {
        /// The path as shown to the user.
        path: String,
        /// What it is instead (`symlink`, `directory`, ...).
        kind: &'static str,
    },
    /// The file is larger than its cap; it was not read.
    #[error("{path} is {size} bytes; the limit for this file is {cap}")]
    TooLarge {
        /// The path as shown to the user.
        path: String,
        /// Its size, in bytes.
        size: u64,
        /// The most this file may hold, in bytes.
        cap: u64,
    },
    /// Opening or reading the file failed.
    #[error("reading {path}: {message}")]
    Io {
        /// The path as shown to the user.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A subdirectory of the plugins directory is a symlink or a file.
    #[error("{path} is a {kind}, not a directory; the plugins directory's tools/ and analyzers/ must be real directories (a symlink would send reads and writes elsewhere)")]
    NotDirectory {
        /// The path as shown to the user.
        path: String,
        /// What it is instead (`symlink`, `file`, ...).
        kind: &'static str,
    },
}

/// Checks that `dir`, a subdirectory of the plugins directory, is a real
/// directory (or does not exist yet), not a symlink to one: through a
/// symlinked `tools/`, `save_plugin` wrote agent-chosen files wherever the
/// link pointed, and plugins were loaded from there.
pub fn check_subdir(dir: &Path) -> Result<(), ReadError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_dir() => Ok(()),
        Ok(meta) => Err(ReadError::NotDirectory { path: dir.display().to_string(), kind: kind(&meta.file_type()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ReadError::Io { path: dir.display().to_string(), message: e.to_string() }),
    }
}

/// What `t` is, in words.
pub fn kind(t: &FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Reads `path`, a regular file of at most `cap` bytes, without following
/// a symlink and without blocking on a FIFO.
pub fn read_untrusted(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read(path, cap, false)
}

/// Like [`read_untrusted`], but follows symlinks: for a file an operator
/// names on the command line (`analyzer install FILE`), which must still be
/// a regular file within the cap.
pub fn read_named(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read(path, cap, true)
}

fn read(path: &Path, cap: u64, follow: bool) -> Result<Vec<u8>, ReadError> {
    let shown = || path.display().to_string();
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing(shown()),
        _ => ReadError::Io { path: shown(), message: e.to_string() },
    };
    let meta = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }.map_err(io)?;
    check(path, &meta, cap)?;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| {
        // ELOOP: it became a symlink after the check.
        if e.raw_os_error() == Some(libc::ELOOP) {
            ReadError::NotRegular { path: shown(), kind: "symlink" }
        } else {
            io(e)
        }
    })?;
    // The descriptor, not the name: what was opened is what is read.
    let meta = file.metadata().map_err(io)?;
    check(path, &meta, cap)?;
    read_capped(file, path, cap, meta.len())
}

fn check(path: &Path, meta: &std::fs::Metadata, cap: u64) -> Result<(), ReadError> {
    let t = meta.file_type();
    if !t.is_file() {
        return Err(ReadError::NotRegular { path: path.display().to_string(), kind: kind(&t) });
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { path: path.display().to_string(), size: meta.len(), cap });
    }
    Ok(())
}

fn read_capped(file: File, path: &Path, cap: u64, len: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(cap)).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io { path: path.display().to_string(), message: e.to_string() })?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { path: path.display().to_string(), size: bytes.len() as u64, cap });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.wasm");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(read_untrusted(&p, 3).expect("read"), b"abc");
        assert!(matches!(read_untrusted(&p, 2), Err(ReadError::TooLarge { .. })));
        assert!(matches!(read_untrusted(&dir.path().join("none"), 2), Err(ReadError::Missing(_))));
    }

    #[test]
    fn symlinks_devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zero = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(matches!(read_untrusted(&zero, MAX_WASM_BYTES), Err(ReadError::NotRegular { kind: "symlink", .. })));
        // Followed (an operator's own path), it is still not a regular file.
        assert!(matches!(read_named(&zero, MAX_WASM_BYTES), Err(ReadError::NotRegular { kind: "character device", .. })));
        assert!(matches!(read_untrusted(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular { .. })));
        assert!(matches!(read_untrusted(dir.path(), 10), Err(ReadError::NotRegular { kind: "directory", .. })));
        let fifo = dir.path().join("x.plugin.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
        let started = std::time::Instant::now();
        assert!(matches!(read_untrusted(&fifo, 10), Err(ReadError::NotRegular { kind: "FIFO", .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
