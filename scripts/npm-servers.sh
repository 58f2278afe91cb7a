#!/usr/bin/env bash
# Installs the real upstream MCP servers the tests and benchmarks spawn
# (tests/upstream/package.json, pinned by its lock file) into target/npm.
# Idempotent; logs to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/target/npm"
mkdir -p "$DIR"
cp "$ROOT/tests/upstream/package.json" "$ROOT/tests/upstream/package-lock.json" "$DIR/"
STAMP="$DIR/node_modules/.installed-from-lock"
if ! cmp -s "$DIR/package-lock.json" "$STAMP" 2>/dev/null; then
  echo "npm-servers: installing upstream MCP servers into $DIR" >&2
  (cd "$DIR" && npm ci --silent --no-audit --no-fund >&2)
  cp "$DIR/package-lock.json" "$STAMP"
fi
