//! The component face every remote embedder shares, as one macro: the
//! `embedder-remote` world's bindings and its `embedder` export, over a
//! [`crate::provider::Provider`].

/// Exports `$provider` (a type implementing
/// [`Provider`](crate::provider::Provider)) as
/// `memory-mcp:embeddings/embedder@0.2.0`. The calling crate depends on
/// `wit-bindgen` and `wasip2`.
#[macro_export]
macro_rules! export_provider {
    ($provider:ident) => {
        #[allow(unsafe_code)] // wit-bindgen's generated canonical-ABI export glue
        mod component {
        use super::$provider;
        wit_bindgen::generate!({
            // The WASI packages the embedder-remote world imports, vendored once in
            // wit/deps/, in dependency order, then the package.
            path: ["../../wit/deps/io.wit", "../../wit/deps/clocks.wit", "../../wit/deps/random.wit", "../../wit/deps/filesystem.wit", "../../wit/deps/sockets.wit", "../../wit/deps/cli.wit", "../../wit/deps/http.wit", "../../wit/embeddings/0.2.0"],
            world: "memory-mcp:embeddings/embedder-remote@0.2.0",
            with: {
                "wasi:http/types@0.2.12": wasip2::http::types,
                "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
            },
        });

        use embed_http::Failure;
        use embed_http::provider::{self, Config, Provider};
        use exports::memory_mcp::embeddings::embedder::{EmbedError, EmbedderConfig, Guest, ModelInfo};

        fn config(c: EmbedderConfig) -> Config {
            Config {
                model: c.model,
                base_url: c.base_url,
                api_key: c.api_key,
                dimensions: c.dimensions,
                timeout_ms: c.timeout_ms,
                max_retries: c.max_retries,
            }
        }

        fn error(f: Failure) -> EmbedError {
            match f {
                Failure::InvalidConfig(s) => EmbedError::InvalidConfig(s),
                Failure::Unavailable(s) => EmbedError::Unavailable(s),
                Failure::Denied(s) => EmbedError::Denied(s),
                Failure::Timeout => EmbedError::Timeout,
                Failure::BadResponse(s) => EmbedError::BadResponse(s),
                Failure::TooLarge(s) => EmbedError::TooLarge(s),
            }
        }

        impl Guest for $provider {
            fn info(c: EmbedderConfig) -> Result<ModelInfo, EmbedError> {
                let (model, dimensions, max_batch) = provider::info::<$provider>(&config(c)).map_err(error)?;
                Ok(ModelInfo { provider: $provider::NAME.into(), model, dimensions, max_batch })
            }

            fn embed(c: EmbedderConfig, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
                provider::embed::<$provider>(&config(c), &texts).map_err(error)
            }
        }

        export!($provider);
        }
    };
}
