//! The component face: `memory-mcp:embeddings/embedder@0.2.0`.

wit_bindgen::generate!({
    // The WASI packages the embedder-remote world imports, vendored once in
    // wit/deps/, in dependency order, then the package.
    path: ["../../wit/deps/io.wit", "../../wit/deps/clocks.wit", "../../wit/deps/random.wit", "../../wit/deps/filesystem.wit", "../../wit/deps/sockets.wit", "../../wit/deps/cli.wit", "../../wit/deps/http.wit", "../../wit/embeddings/0.2.0"],
    world: "memory-mcp:embeddings/embedder-local@0.2.0",
});

use exports::memory_mcp::embeddings::embedder::{EmbedError, EmbedderConfig, Guest, ModelInfo};

use crate::{DEFAULT_DIMENSIONS, DIMENSIONS, MAX_BATCH, MODEL};

struct Component;

fn dimensions(config: &EmbedderConfig) -> Result<u32, EmbedError> {
    if let Some(m) = &config.model
        && m != MODEL
    {
        return Err(EmbedError::InvalidConfig(format!("the local provider has one model, `{MODEL}`, not `{m}`")));
    }
    let dims = config.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !DIMENSIONS.contains(&dims) {
        return Err(EmbedError::InvalidConfig(format!(
            "dimensions must be {}..={}, not {dims}",
            DIMENSIONS.start(),
            DIMENSIONS.end()
        )));
    }
    Ok(dims)
}

impl Guest for Component {
    fn info(config: EmbedderConfig) -> Result<ModelInfo, EmbedError> {
        Ok(ModelInfo {
            provider: "local".into(),
            model: MODEL.into(),
            dimensions: dimensions(&config)?,
            max_batch: MAX_BATCH,
        })
    }

    fn embed(config: EmbedderConfig, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dims = dimensions(&config)?;
        if texts.len() > MAX_BATCH as usize {
            return Err(EmbedError::TooLarge(format!("{} texts; at most {MAX_BATCH} per call", texts.len())));
        }
        let mut scratch = Vec::new();
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0; dims as usize];
                crate::embed_into(t, &mut v, &mut scratch);
                v
            })
            .collect())
    }
}

export!(Component);
