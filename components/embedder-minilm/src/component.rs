//! The component face: `memory-mcp:embeddings/embedder@0.2.0`, world
//! `embedder-local` (no network). The model is read once per instance
//! from [`MODEL_DIR`], the one directory the host preopens (read-only), and
//! kept for the instance's later calls.

wit_bindgen::generate!({
    // The WASI packages the embedder-remote world imports, vendored once in
    // wit/deps/, in dependency order, then the package.
    path: ["../../wit/deps/io.wit", "../../wit/deps/clocks.wit", "../../wit/deps/random.wit", "../../wit/deps/filesystem.wit", "../../wit/deps/sockets.wit", "../../wit/deps/cli.wit", "../../wit/deps/http.wit", "../../wit/embeddings/0.2.0"],
    world: "memory-mcp:embeddings/embedder-local@0.2.0",
});

use std::sync::OnceLock;

use exports::memory_mcp::embeddings::embedder::{EmbedError, EmbedderConfig, Guest, ModelInfo};

use crate::{DIMENSIONS, MAX_BATCH, MODEL, Model};

/// Where the host preopens the model directory.
pub const MODEL_DIR: &str = "/model";

static LOADED: OnceLock<Result<Model, String>> = OnceLock::new();

fn model() -> Result<&'static Model, EmbedError> {
    LOADED
        .get_or_init(|| Model::load(std::path::Path::new(MODEL_DIR)).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| EmbedError::Unavailable(e.clone()))
}

fn check(config: &EmbedderConfig) -> Result<(), EmbedError> {
    if let Some(m) = &config.model
        && m != MODEL
    {
        return Err(EmbedError::InvalidConfig(format!("the local-minilm provider has one model, `{MODEL}`, not `{m}`")));
    }
    if let Some(d) = config.dimensions
        && d != DIMENSIONS
    {
        return Err(EmbedError::InvalidConfig(format!("{MODEL} has {DIMENSIONS} dimensions, not {d}")));
    }
    Ok(())
}

struct Component;

impl Guest for Component {
    /// Loads the model (so a missing or broken model shows at once).
    fn info(config: EmbedderConfig) -> Result<ModelInfo, EmbedError> {
        check(&config)?;
        model()?;
        Ok(ModelInfo { provider: "local-minilm".into(), model: MODEL.into(), dimensions: DIMENSIONS, max_batch: MAX_BATCH })
    }

    fn embed(config: EmbedderConfig, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        check(&config)?;
        if texts.len() > MAX_BATCH as usize {
            return Err(EmbedError::TooLarge(format!("{} texts; at most {MAX_BATCH} per call", texts.len())));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model()?.embed(&refs).map_err(|e| EmbedError::BadResponse(e.to_string()))
    }
}

export!(Component);
