#!/usr/bin/env bash
# Builds every sandboxed component for wasm32-wasip2 (release): the ones the
# binary embeds, the example plugins, and the test fixtures.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build --release --target wasm32-wasip2 \
  -p js-runtime -p js-plugin -p js-plugin-pure -p pattern-analyzer \
  -p embedder-local -p embedder-ollama -p embedder-openai -p ts-strip \
  -p slow-steps \
  -p hostile-analyzer
# Analyzers with a hand-written canonical ABI (many memories, aliased
# output), generated on the host with wasm-encoder and wit-component.
cargo run --release -q -p hostile-abi -- "$MEMORY_MCP_COMPONENTS_DIR"
ls -l "$MEMORY_MCP_COMPONENTS_DIR"/*.wasm >&2
