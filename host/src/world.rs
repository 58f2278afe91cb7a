//! The host's one `bindgen!`: every WIT contract the host implements or
//! calls, generated together so types are shared, and re-exported here for
//! the rest of the crate.
//!
//! The world below is the union of what the host provides to components
//! (`tools`, `store`) and what it calls in them (runner, plugin, analyzer,
//! statistics, episode analysis, embedder, TypeScript stripper). No single component implements all of it: each
//! call site loads only the export it needs through that interface's
//! `GuestIndices`, the way spin's `crates/world` does.

wasmtime::component::bindgen!({
    // The WASI packages the embedder-remote world imports are vendored once,
    // in wit/deps/, and pushed first, in dependency order.
    path: [
        "../wit/deps/io.wit",
        "../wit/deps/clocks.wit",
        "../wit/deps/random.wit",
        "../wit/deps/filesystem.wit",
        "../wit/deps/sockets.wit",
        "../wit/deps/cli.wit",
        "../wit/deps/http.wit",
        "../wit/memory/0.1.0",
        "../wit/patterns/0.1.0",
        "../wit/patterns/0.2.0",
        "../wit/embeddings/0.2.0",
        "../wit/tool-call/0.1.0",
        "../wit/tool-call/0.2.0",
        "../wit/typescript/0.1.0",
    ],
    inline: "
        package memory-mcp:host;

        world host {
            import memory-mcp:tool-call/tools@0.1.0;
            import memory-mcp:tool-call/tools@0.2.0;
            import memory-mcp:memory/store@0.1.0;

            export memory-mcp:tool-call/runner@0.1.0;
            export memory-mcp:tool-call/plugin@0.1.0;
            export memory-mcp:tool-call/runner@0.2.0;
            export memory-mcp:tool-call/plugin@0.2.0;
            export memory-mcp:patterns/analyzer@0.1.0;
            export memory-mcp:patterns/statistics@0.1.0;
            export memory-mcp:patterns/episode-analysis@0.2.0;
            export memory-mcp:patterns/scorer@0.2.0;
            export memory-mcp:embeddings/embedder@0.2.0;
            export memory-mcp:typescript/stripper@0.1.0;
        }
    ",
    world: "host",
    imports: {
        // A tool call traps when the execution is over its refusal budget
        // (both versions: the key has no version).
        "memory-mcp:tool-call/tools.call-tool": async | trappable,
        default: async,
    },
    exports: { default: async },
});

pub use self::exports::memory_mcp::patterns0_1_0::{analyzer, statistics};
pub use self::exports::memory_mcp::patterns0_2_0::{episode_analysis, scorer};
pub use self::exports::memory_mcp::tool_call0_2_0::{plugin, runner};
pub use self::memory_mcp::memory::{store as episode_store, types};
pub use self::exports::memory_mcp::embeddings::embedder;
pub use self::exports::memory_mcp::typescript::stripper;
pub use self::memory_mcp::tool_call0_2_0::tools;

/// `memory-mcp:tool-call@0.1.0`, kept so plugins saved (and third-party
/// components built) against it still load: its `tools` import is linked
/// beside 0.2.0's, and its `plugin` export is adapted onto 0.2.0's types
/// in `sandbox::legacy`.
pub mod tool_call_0_1_0 {
    pub use super::exports::memory_mcp::tool_call0_1_0::{plugin, runner};
    pub use super::memory_mcp::tool_call0_1_0::tools;
}
