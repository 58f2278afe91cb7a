//! Embeddings from an OpenAI-compatible server: `POST {base_url}/v1/embeddings`
//! (or `{base_url}/embeddings` when the base URL already ends in `/v1`) with
//! `{"model", "input": [...], "encoding_format": "float"}` and a bearer key,
//! answered by `{"data": [{"index", "embedding"}, ...]}`. The default model
//! is `text-embedding-3-small`; there is no default base URL.

#![cfg(target_arch = "wasm32")]

use embed_http::provider::Provider;
use embed_http::{Endpoint, Failure, parse_vector};
use serde_json::{Value, json};

/// The OpenAI-compatible request and answer shapes.
pub struct OpenAi;

impl Provider for OpenAi {
    const NAME: &'static str = "openai";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    const DEFAULT_MODEL: &'static str = "text-embedding-3-small";
    const MAX_BATCH: u32 = 2048;

    fn path(endpoint: &Endpoint) -> &'static str {
        if endpoint.path.ends_with("/v1") { "/embeddings" } else { "/v1/embeddings" }
    }

    fn body(model: &str, dimensions: Option<u32>, texts: &[String]) -> Value {
        let mut body = json!({ "model": model, "input": texts, "encoding_format": "float" });
        if let Some(d) = dimensions {
            body["dimensions"] = json!(d);
        }
        body
    }

    fn parse(answer: Value) -> Result<Vec<Vec<f32>>, Failure> {
        let data = answer
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::BadResponse("the answer has no data array".into()))?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; data.len()];
        for (i, item) in data.iter().enumerate() {
            let index = item.get("index").and_then(Value::as_u64).map_or(i, |x| x as usize);
            let slot = out.get_mut(index).ok_or_else(|| Failure::BadResponse(format!("index {index} out of range")))?;
            *slot = Some(parse_vector(item.get("embedding").unwrap_or(&Value::Null))?);
        }
        out.into_iter().map(|v| v.ok_or_else(|| Failure::BadResponse("an index is missing".into()))).collect()
    }
}

embed_http::export_provider!(OpenAi);
