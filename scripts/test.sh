#!/usr/bin/env bash
# Sets up, builds, and runs every test: host unit tests, real components,
# and end-to-end MCP over stdio against the real binary.
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
cd "$ROOT"
# The real upstream MCP servers (npm) the tool-call tests spawn.
"$HERE/npm-servers.sh"
# Node 22, the MCP TypeScript SDK and the conformance suite (npm), which
# the Streamable HTTP tests run.
"$HERE/npm-http.sh"
# Warm the artifact cache the tests share, so the first tests do not race
# to snapshot and compile the runtime.
CACHE="$ROOT/target/tmp/artifact-cache"
mkdir -p "$CACHE"
"$ROOT/target/release/memory-mcp" --data-dir "$ROOT/target/test-data" --cache-dir "$CACHE" warm
# Lints first (the workspace's [workspace.lints], deny level, for the crates
# that opt in; clippy's defaults for pattern-analyzer, which does not yet:
# see Cargo.toml). The native crates, with their tests and benches:
cargo clippy --release -p memory-mcp -p backoff -p js-interpreter -p embedder-local -p embed-http -p ts-strip -p embedder-minilm -p pattern-analyzer --all-targets -- -D warnings
# Every component crate's component code (cfg wasm32), as the components
# are built, and the example analyzer and scorer in plugins/.
cargo clippy --release --target wasm32-wasip2 -p embedder-local -p embed-http -p embedder-ollama -p embedder-openai -p ts-strip \
  -p js-runtime -p js-plugin -p js-plugin-pure -p embedder-minilm -p pattern-analyzer -p slow-steps -p recency-scorer -- -D warnings
cargo test --release -p memory-mcp -p pattern-analyzer -p embedder-local -p embed-http -p ts-strip -p js-interpreter -p backoff -- --test-threads 2 "$@"
