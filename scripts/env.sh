# Sourced by the other scripts: the toolchain environment for building
# QuickJS (rquickjs-sys) for wasm32-wasip2 with Debian's clang-19 and
# wasi-libc instead of a downloaded WASI SDK.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
SYSROOT="$ROOT/target/wasi-sysroot"
mkdir -p "$SYSROOT/lib"
ln -sfn /usr/include/wasm32-wasi "$SYSROOT/include"
ln -sfn /usr/lib/wasm32-wasi "$SYSROOT/lib/wasm32-wasi"
export RQUICKJS_SYS_NO_WASI_SDK=1
export CC_wasm32_wasip2=/usr/lib/llvm-19/bin/clang
export AR_wasm32_wasip2=/usr/lib/llvm-19/bin/llvm-ar
export CFLAGS_wasm32_wasip2="--sysroot=$SYSROOT -D_WASI_EMULATED_SIGNAL"
export BINDGEN_EXTRA_CLANG_ARGS_wasm32_wasip2="--sysroot=$SYSROOT"
# Where the built components land; the host embeds them from here.
export MEMORY_MCP_COMPONENTS_DIR="$ROOT/target/wasm32-wasip2/release"
