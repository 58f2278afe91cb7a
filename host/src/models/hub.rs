//! Downloading a model from the Hugging Face Hub, or from any server that
//! answers like it (`GET {endpoint}/{repo}/resolve/{revision}/{file}`): the
//! endpoint is `--endpoint`, else `HF_ENDPOINT`, else the Hub. Each file is
//! streamed into the staging directory and checked like a local install.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::install::{Installed, Staging};
use super::{ModelError, ModelSpec};

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Connect timeout, and the longest silence between two chunks.
const STALL: Duration = Duration::from_secs(30);

/// The endpoint to use: the given one, else `HF_ENDPOINT`, else the Hub.
pub fn endpoint(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The URL of one file of `spec` at `endpoint`.
pub fn file_url(endpoint: &str, spec: &ModelSpec, file: &str) -> String {
    format!("{endpoint}/{}/resolve/{}/{file}", spec.hub_repo, spec.hub_revision)
}

/// Downloads every file of `spec` from `endpoint` and installs it.
pub async fn install(spec: &ModelSpec, data_dir: &Path, endpoint: &str) -> Result<Installed, ModelError> {
    let target = spec.path(data_dir);
    let bytes = spec.files.iter().map(|f| f.bytes).sum();
    if spec.present(&target) && spec.verify(&target).is_ok() {
        return Ok(Installed { dir: target, already: true, bytes });
    }
    let client = reqwest::Client::builder()
        .connect_timeout(STALL)
        .read_timeout(STALL)
        .build()
        .map_err(|e| ModelError::Source(format!("HTTP client: {e}")))?;
    let staging = Staging::new(spec, data_dir)?;
    for f in spec.files {
        let url = file_url(endpoint, spec, f.name);
        let fail = |reason: String| ModelError::Download { url: url.clone(), reason };
        let mut resp = client.get(&url).send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status().as_u16())));
        }
        if let Some(len) = resp.content_length()
            && len != f.bytes
        {
            return Err(ModelError::Size { file: f.name.into(), expected: f.bytes, got: len });
        }
        let mut w = staging.begin(f)?;
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            // Never more than the pinned size.
            if w.written() + chunk.len() as u64 > f.bytes {
                return Err(ModelError::Size { file: f.name.into(), expected: f.bytes, got: w.written() + chunk.len() as u64 });
            }
            w.write_all(&chunk).map_err(|e| fail(e.to_string()))?;
        }
        staging.finish(f, w)?;
    }
    Ok(Installed { dir: staging.commit()?, already: false, bytes })
}
