#!/usr/bin/env bash
# Sets up, then builds the components and the host (release).
set -euo pipefail
HERE="$(dirname "$0")"
"$HERE/setup.sh"
"$HERE/build-components.sh"
source "$HERE/env.sh"
cd "$ROOT"
cargo build --release -p memory-mcp >&2
