#!/usr/bin/env bash
# Sets up, builds, and starts the MCP stdio server with embedded defaults.
# Arguments are passed to memory-mcp (see `memory-mcp --help`).
# Build output goes to stderr; stdout is the MCP protocol.
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/build.sh"
source "$HERE/env.sh"
exec "$ROOT/target/release/memory-mcp" "$@"
