//! Embeddings from an Ollama server: `POST {base_url}/api/embed` with
//! `{"model", "input": [...]}`, answered by `{"embeddings": [[...], ...]}`.
//! The default base URL is `http://127.0.0.1:11434`, the default model
//! `nomic-embed-text`.

#![cfg(target_arch = "wasm32")]

use embed_http::provider::Provider;
use embed_http::{Endpoint, Failure, parse_vector};
use serde_json::{Value, json};

/// The Ollama request and answer shapes.
pub struct Ollama;

impl Provider for Ollama {
    const NAME: &'static str = "ollama";
    const DEFAULT_BASE_URL: Option<&'static str> = Some("http://127.0.0.1:11434");
    const DEFAULT_MODEL: &'static str = "nomic-embed-text";
    const MAX_BATCH: u32 = 256;

    fn path(_: &Endpoint) -> &'static str {
        "/api/embed"
    }

    fn body(model: &str, dimensions: Option<u32>, texts: &[String]) -> Value {
        let mut body = json!({ "model": model, "input": texts });
        if let Some(d) = dimensions {
            body["dimensions"] = json!(d);
        }
        body
    }

    fn parse(answer: Value) -> Result<Vec<Vec<f32>>, Failure> {
        answer
            .get("embeddings")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::BadResponse("the answer has no embeddings array".into()))?
            .iter()
            .map(parse_vector)
            .collect()
    }
}

embed_http::export_provider!(Ollama);
