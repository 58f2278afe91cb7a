#!/usr/bin/env bash
# Installs what the Streamable HTTP tests run (tests/http/package.json,
# pinned by its lock file) into target/npm-http: Node 22 (the official
# binary, published on npm as node-linux-<arch>; Debian's nodejs is older),
# the official MCP TypeScript SDK, and the official conformance suite.
# Only the npm registry is contacted. Idempotent; logs to stderr. Prints
# nothing; the Node 22 binary is target/npm-http/node_modules/.bin/node.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/target/npm-http"
mkdir -p "$DIR"
cp "$ROOT/tests/http/package.json" "$ROOT/tests/http/package-lock.json" "$DIR/"
STAMP="$DIR/node_modules/.installed-from-lock"
if ! cmp -s "$DIR/package-lock.json" "$STAMP" 2>/dev/null; then
  echo "npm-http: installing Node 22, the MCP TypeScript SDK and the conformance suite into $DIR" >&2
  # --engine-strict off: the installing npm may run on an older Node; the
  # packages run on the Node 22 installed here.
  (cd "$DIR" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2)
  cp "$DIR/package-lock.json" "$STAMP"
fi
NODE="$DIR/node_modules/.bin/node"
if ! "$NODE" --version | grep -q '^v22\.'; then
  echo "npm-http: $NODE is not Node 22 ($("$NODE" --version 2>&1))" >&2
  exit 1
fi
