//! Locates the built components the binary embeds. They are built by
//! `scripts/build-components.sh` (cargo, target wasm32-wasip2).

use std::path::PathBuf;

const COMPONENTS: &[(&str, &str)] = &[
    ("js_runtime", "MEMORY_MCP_COMPONENT_JS_RUNTIME"),
    ("js_plugin", "MEMORY_MCP_COMPONENT_JS_PLUGIN"),
    ("js_plugin_pure", "MEMORY_MCP_COMPONENT_JS_PLUGIN_PURE"),
    ("pattern_analyzer", "MEMORY_MCP_COMPONENT_PATTERN_ANALYZER"),
    ("embedder_local", "MEMORY_MCP_COMPONENT_EMBEDDER_LOCAL"),
    ("embedder_minilm", "MEMORY_MCP_COMPONENT_EMBEDDER_MINILM"),
    ("embedder_ollama", "MEMORY_MCP_COMPONENT_EMBEDDER_OLLAMA"),
    ("embedder_openai", "MEMORY_MCP_COMPONENT_EMBEDDER_OPENAI"),
    ("ts_strip", "MEMORY_MCP_COMPONENT_TS_STRIP"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=MEMORY_MCP_COMPONENTS_DIR");
    // Cargo sets CARGO_MANIFEST_DIR when it compiles a build script too.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("MEMORY_MCP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/wasm32-wasip2/release"));
    for (file, var) in COMPONENTS {
        let path = dir.join(format!("{file}.wasm"));
        if !path.exists() {
            panic!(
                "component {} is missing: build the components first with scripts/build-components.sh",
                path.display()
            );
        }
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
