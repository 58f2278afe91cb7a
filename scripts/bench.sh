#!/usr/bin/env bash
# Sets up, builds, and runs the benchmarks; prints the README's tables.
# BENCH_QUICK=1 for a short run. Needs node/npm for the baselines
# (node-per-execution, and @modelcontextprotocol/server-memory).
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
cd "$ROOT"
NPM_DIR="$ROOT/target/npm"
if [ ! -f "$NPM_DIR/node_modules/@modelcontextprotocol/server-memory/dist/index.js" ]; then
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm install --silent --no-audit --no-fund @modelcontextprotocol/server-memory >&2)
fi
export BENCH_NODE_MEMORY="$NPM_DIR/node_modules/@modelcontextprotocol/server-memory/dist/index.js"
echo "## code mode" ; cargo bench -p memory-mcp --bench sandbox 2>/dev/null | grep '^|'
echo "## episodic memory"; cargo bench -p memory-mcp --bench memory 2>/dev/null | grep '^|'
echo "## learning"; cargo bench -p memory-mcp --bench patterns 2>/dev/null | grep -E '^(\||[0-9]|With)'
echo "## embeddings"; cargo bench -p memory-mcp --bench embeddings 2>/dev/null | grep -E "^\|"
