#!/usr/bin/env bash
# Sets up, builds, and runs the benchmarks; prints the README's tables.
# BENCH_QUICK=1 for a short run. Needs node/npm for the baselines
# (node-per-execution, and the npm MCP servers in tests/upstream).
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
cd "$ROOT"
"$HERE/npm-servers.sh"
export BENCH_NODE_MEMORY="$ROOT/target/npm/node_modules/@modelcontextprotocol/server-memory/dist/index.js"
echo "## code mode" ; cargo bench -p memory-mcp --bench sandbox 2>/dev/null | grep '^|'
echo "## episodic memory"; cargo bench -p memory-mcp --bench memory 2>/dev/null | grep '^|'
echo "## learning"; cargo bench -p memory-mcp --bench patterns 2>/dev/null | grep -E '^(\||[0-9]|With)'
echo "## embeddings"; cargo bench -p memory-mcp --bench embeddings 2>/dev/null | grep -E "^\|"
echo "## tool calls from code"; cargo bench -p memory-mcp --bench tools 2>/dev/null | grep -E "^\|"
echo "## token savings"; cargo bench -p memory-mcp --bench tokens 2>/dev/null | grep -E "^\|"
echo "## plugins"; cargo bench -p memory-mcp --bench plugins 2>/dev/null | grep -E "^(\||Templates)"
echo "## cancellation"; cargo bench -p memory-mcp --bench cancel 2>/dev/null | grep -E "^(cancel|  )"
