#!/usr/bin/env bash
# Sets up, builds, and runs the benchmarks; prints the README's tables.
# BENCH_QUICK=1 for a short run.
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
cd "$ROOT"
cargo bench -p memory-mcp --bench sandbox
