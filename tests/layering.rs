//! The workspace's layering, checked from its sources (issue 16, "No
//! cycles"): no cycle among `host/src`'s top-level modules, no cycle among
//! the files of any crate in the workspace, and the host links no
//! component crate as a library (dev-dependencies aside: native benchmark
//! baselines). Sources are read with `syn`; `#[cfg(test)]` code is left
//! out. Paths are followed through imports and re-exports to the file that
//! defines what they name; a file using what its ancestors' files define
//! (a child using `mod.rs`'s shared types) is no file edge, since a
//! module's children implement it. A failure names the cycle and, for each
//! edge, the path that made it.
//!
//! `cargo test --release -p memory-mcp --test layering -- --nocapture`
//! prints the module graph.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "layering/graph.rs"]
mod graph;
#[path = "layering/modules.rs"]
mod modules;

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest(dir: &Path) -> toml::Table {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The workspace's member directories, relative to its root.
fn members() -> Vec<PathBuf> {
    let root = manifest(&workspace());
    let members = root["workspace"]["members"].as_array().expect("workspace.members");
    members.iter().map(|m| PathBuf::from(m.as_str().expect("a member path"))).collect()
}

/// Every crate root of a member: its lib, its bins, and its tests and
/// benches (each of which is a crate), as (name, root file).
fn crate_roots(member: &Path) -> Vec<(String, PathBuf)> {
    let ws = workspace();
    let toml = manifest(&ws.join(member));
    let package = toml["package"]["name"].as_str().expect("package.name").to_string();
    let mut roots = Vec::new();
    let lib = toml.get("lib").and_then(|l| l.get("path")).and_then(|p| p.as_str()).unwrap_or("src/lib.rs");
    if ws.join(member).join(lib).is_file() {
        roots.push((format!("{package} (lib)"), member.join(lib)));
    }
    let mut targets = vec![("bin", "src/main.rs".to_string())];
    for kind in ["bin", "test", "bench"] {
        for target in toml.get(kind).and_then(|t| t.as_array()).into_iter().flatten() {
            let name = target.get("name").and_then(|n| n.as_str()).unwrap_or("");
            let path = match target.get("path").and_then(|p| p.as_str()) {
                Some(p) => p.to_string(),
                None if kind == "bench" => format!("benches/{name}.rs"),
                None if kind == "test" => format!("tests/{name}.rs"),
                None => format!("src/bin/{name}.rs"),
            };
            targets.push((kind, path));
        }
    }
    for (kind, path) in targets {
        let file = super_normalize(&member.join(&path));
        if ws.join(&file).is_file() && !roots.iter().any(|(_, f)| *f == file) {
            roots.push((format!("{package} ({kind} {path})"), file));
        }
    }
    roots
}

/// `host/../tests/x.rs` as `tests/x.rs`.
fn super_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn host_modules_form_no_cycle() {
    let krate = modules::read_crate(&workspace(), "memory-mcp", Path::new("host/src/lib.rs")).expect("reading host/src");
    let (_, modules) = graph::graphs(&krate);
    println!("host/src top-level modules (#[cfg(test)] code left out):\n{}", modules.render());
    println!("why (the first path naming each):\n{}", modules.explain());
    let cycles = graph::cycles(&modules);
    assert!(cycles.is_empty(), "module cycles in host/src:\n{}", cycles.join("\n"));
}

#[test]
fn no_crate_has_a_file_cycle() {
    let ws = workspace();
    let mut failures = Vec::new();
    let mut checked = 0;
    for member in members() {
        for (name, root) in crate_roots(&member) {
            let krate = modules::read_crate(&ws, &name, &root).unwrap_or_else(|e| panic!("{name}: {e}"));
            checked += krate.modules.len();
            let (files, _) = graph::graphs(&krate);
            for cycle in graph::cycles(&files) {
                failures.push(format!("{}: {cycle}", krate.name));
            }
        }
    }
    println!("{checked} modules checked for file cycles");
    assert!(checked > 100, "only {checked} modules found: the crate roots were not read");
    assert!(failures.is_empty(), "file cycles:\n{}", failures.join("\n"));
}

/// A component crate: built as a `cdylib` or bound with `wit-bindgen`.
fn is_component(dir: &Path) -> bool {
    let toml = manifest(dir);
    let cdylib = toml
        .get("lib")
        .and_then(|l| l.get("crate-type"))
        .and_then(|t| t.as_array())
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    let bindgen = toml.get("dependencies").and_then(|d| d.as_table()).is_some_and(|d| d.contains_key("wit-bindgen"));
    cdylib || bindgen
}

#[test]
fn host_links_no_component_crate() {
    let host = workspace().join("host");
    let toml = manifest(&host);
    let mut tables: Vec<(String, &toml::Table)> = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = toml.get(key).and_then(|t| t.as_table()) {
            tables.push((key.to_string(), t));
        }
    }
    for (target, spec) in toml.get("target").and_then(|t| t.as_table()).into_iter().flatten() {
        for key in ["dependencies", "build-dependencies"] {
            if let Some(t) = spec.get(key).and_then(|t| t.as_table()) {
                tables.push((format!("target.{target}.{key}"), t));
            }
        }
    }
    let mut linked = Vec::new();
    for (section, deps) in tables {
        for (name, dep) in deps {
            if let Some(path) = dep.get("path").and_then(|p| p.as_str())
                && is_component(&host.join(path))
            {
                linked.push(format!("[{section}] {name} = {path}"));
            }
        }
    }
    assert!(linked.is_empty(), "the host links component crates (share their code through a plain crate): {linked:?}");
}
