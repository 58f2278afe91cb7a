//! all-MiniLM-L6-v2 with candle: tokenise (WordPiece, lower-cased, at most
//! [`MAX_TOKENS`] tokens), run the 6-layer BERT, mean-pool the last hidden
//! state over the real tokens, L2-normalise. The same code runs natively
//! (the fixture test and the native-vs-component benchmark) and inside the
//! component ([`component`], wasm32 only), which reads the model directory
//! from its one read-only preopen.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI export glue
mod component;
mod weights;

/// The model's name as the provider reports it.
pub const MODEL: &str = "all-MiniLM-L6-v2";
/// Its output dimensions.
pub const DIMENSIONS: u32 = 384;
/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
/// Most texts one call embeds.
pub const MAX_BATCH: u32 = 32;
/// Longest text (in bytes) handed to the tokenizer: far more than
/// [`MAX_TOKENS`] word pieces need, so tokenising stays bounded.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// The files a model directory must hold.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why the model could not be loaded or run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A model file is missing or unreadable.
    Io(String),
    /// A model file is malformed.
    Format(String),
    /// The model failed while running.
    Run(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(s) => write!(f, "model files: {s}"),
            Error::Format(s) => write!(f, "model format: {s}"),
            Error::Run(s) => write!(f, "model run: {s}"),
        }
    }
}

impl std::error::Error for Error {}

fn run_err(e: candle_core::Error) -> Error {
    Error::Run(e.to_string())
}

/// A loaded model: tokenizer and weights.
pub struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] bytes, on a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Model {
    /// Loads the model from a directory holding [`FILES`], reading the
    /// weights tensor by tensor (see [`weights`]), so they are held once.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| Error::Io(format!("{name}: {e}")));
        let file = std::fs::File::open(dir.join("model.safetensors")).map_err(|e| Error::Io(format!("model.safetensors: {e}")))?;
        let tensors = weights::FileTensors::open(file)?;
        let vb = VarBuilder::from_backend(Box::new(tensors), DType::F32, Device::Cpu);
        Self::from_parts(&read("config.json")?, &read("tokenizer.json")?, vb)
    }

    fn from_parts(config: &[u8], tokenizer: &[u8], vb: VarBuilder<'_>) -> Result<Self, Error> {
        let config: Config = serde_json::from_slice(config).map_err(|e| Error::Format(format!("config.json: {e}")))?;
        if config.hidden_size != DIMENSIONS as usize {
            return Err(Error::Format(format!(
                "config.json: hidden_size {} is not {DIMENSIONS}: not all-MiniLM-L6-v2",
                config.hidden_size
            )));
        }
        let mut tokenizer = Tokenizer::from_bytes(tokenizer).map_err(|e| Error::Format(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| Error::Format(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        let bert = BertModel::load(vb, &config).map_err(|e| Error::Format(format!("model.safetensors: {e}")))?;
        Ok(Self { bert, tokenizer, device: Device::Cpu })
    }

    /// One L2-normalised 384-dimension vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(|t| bounded(t)).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
        let rows = encodings.len();
        let width = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for e in &encodings {
            ids.extend(e.get_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().copied());
        }
        let ids = Tensor::from_vec(ids, (rows, width), &self.device).map_err(run_err)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device).map_err(run_err)?;
        let types = ids.zeros_like().map_err(run_err)?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask)).map_err(run_err)?;
        // Mean over the real tokens: sum(hidden * mask) / sum(mask).
        let maskf = mask.to_dtype(DType::F32).map_err(run_err)?.unsqueeze(2).map_err(run_err)?;
        let summed = hidden.broadcast_mul(&maskf).map_err(run_err)?.sum(1).map_err(run_err)?;
        let counts = maskf.sum(1).map_err(run_err)?.clamp(1e-9, f64::MAX).map_err(run_err)?;
        let mean = summed.broadcast_div(&counts).map_err(run_err)?;
        let norm = mean.sqr().map_err(run_err)?.sum_keepdim(1).map_err(run_err)?.sqrt().map_err(run_err)?;
        let norm = norm.clamp(1e-12, f64::MAX).map_err(run_err)?;
        let unit = mean.broadcast_div(&norm).map_err(run_err)?;
        unit.to_vec2::<f32>().map_err(run_err)
    }
}
