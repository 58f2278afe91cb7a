#!/usr/bin/env bash
# Builds every sandboxed component for wasm32-wasip2 (release): the ones the
# binary embeds, the example plugins, and the test fixtures.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build --release --target wasm32-wasip2 \
  -p js-runtime -p js-plugin -p js-plugin-pure -p pattern-analyzer \
  -p embedder-local -p embedder-ollama -p embedder-openai -p ts-strip \
  -p slow-steps -p recency-scorer \
  -p hostile-analyzer -p fs-probe -p broken-scorer -p legacy-plugin -p legacy-pure-plugin
# The model embedder (candle) is built with wasm SIMD (whether it pays is
# not yet measured: see the README's Embeddings figures), in its own target
# dir so the flag does not rebuild the other components.
RUSTFLAGS="-C target-feature=+simd128" cargo build --release --target wasm32-wasip2 \
  -p embedder-minilm --target-dir "$ROOT/target/minilm"
cp "$ROOT/target/minilm/wasm32-wasip2/release/embedder_minilm.wasm" "$MEMORY_MCP_COMPONENTS_DIR/"
# Analyzers with a hand-written canonical ABI (many memories, aliased
# output), generated on the host with wasm-encoder and wit-component.
cargo run --release -q -p hostile-abi -- "$MEMORY_MCP_COMPONENTS_DIR"
ls -l "$MEMORY_MCP_COMPONENTS_DIR"/*.wasm >&2
