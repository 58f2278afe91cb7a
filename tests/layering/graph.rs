//! Resolves the paths a crate's modules name to the module that defines
//! them (following imports and re-exports), giving two graphs: file →
//! file (where the named item is defined) and top-level module → top-level
//! module. Naming a module itself (`use crate::memory;`) is an edge
//! between modules but not between files: no code of that file is used.
//! Nor is a file's use of its ancestors' files (see [`ancestor_files`]):
//! the file cycles counted are among siblings and cousins.

use std::collections::{BTreeMap, BTreeSet};

use super::modules::Crate;

/// Where a path led.
#[derive(Debug, Clone, Copy)]
enum Resolved {
    /// The module itself.
    Module(usize),
    /// Something defined in the module's file.
    In(usize),
}

/// A directed graph with, for each edge, the first path that made it.
#[derive(Debug, Default)]
pub struct Graph {
    pub edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl Graph {
    fn add(&mut self, from: &str, to: &str, why: String) {
        self.edges.entry(to.to_string()).or_default();
        self.edges.entry(from.to_string()).or_default().entry(to.to_string()).or_insert(why);
    }

    /// The node's successors.
    pub fn next(&self, node: &str) -> impl Iterator<Item = &String> {
        self.edges.get(node).into_iter().flat_map(|m| m.keys())
    }

    /// Why `from` → `to` is an edge.
    pub fn why(&self, from: &str, to: &str) -> &str {
        self.edges.get(from).and_then(|m| m.get(to)).map_or("", String::as_str)
    }

    /// `a → b   (why)` lines, one per edge.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (from, to) in &self.edges {
            for (to, why) in to {
                out.push_str(&format!("  {from} -> {to}   ({why})\n"));
            }
        }
        out
    }

    /// `a → {b, c}` lines, one per node with successors.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (from, to) in &self.edges {
            if !to.is_empty() {
                let list: Vec<&str> = to.keys().map(String::as_str).collect();
                out.push_str(&format!("  {from} -> {{{}}}\n", list.join(", ")));
            }
        }
        out
    }
}

/// The crate's file graph and its top-level module graph.
pub fn graphs(krate: &Crate) -> (Graph, Graph) {
    let mut files = Graph::default();
    let mut modules = Graph::default();
    for (id, module) in krate.modules.iter().enumerate() {
        let file = module.file.display().to_string();
        files.edges.entry(file.clone()).or_default();
        if let Some(top) = module.path.get(1) {
            modules.edges.entry(top.clone()).or_default();
        }
        for path in &module.refs {
            let Some(target) = resolve(krate, id, path, 0) else { continue };
            let why = format!("{} names {}", file, path.join("::"));
            let (Resolved::Module(t) | Resolved::In(t)) = target;
            if let (Some(a), Some(b)) = (module.path.get(1), krate.modules[t].path.get(1))
                && a != b
            {
                modules.add(a, b, why.clone());
            }
            if let Resolved::In(t) = target {
                let to = krate.modules[t].file.display().to_string();
                if to != file && !ancestor_files(krate, id).any(|f| *f == krate.modules[t].file) {
                    files.add(&file, &to, why);
                }
            }
        }
    }
    (files, modules)
}

/// The files of a module's ancestors (its parent's, up to the crate
/// root's). A file may use what they define: a module's children
/// implement it, so its file and theirs are one unit, as in
/// `mod.rs` defining the types its children share.
fn ancestor_files(krate: &Crate, id: usize) -> impl Iterator<Item = &std::path::PathBuf> {
    std::iter::successors(krate.modules[id].parent, |&p| krate.modules[p].parent).map(|p| &krate.modules[p].file)
}

/// Where `path`, named in module `from`, leads; `None` for other crates,
/// locals and generics.
fn resolve(krate: &Crate, from: usize, path: &[String], depth: usize) -> Option<Resolved> {
    if depth > 32 || path.is_empty() {
        return None;
    }
    let mut cur = from;
    let mut rest = path;
    let relative = match path[0].as_str() {
        "crate" => {
            cur = 0;
            rest = &path[1..];
            false
        }
        "self" => {
            rest = &path[1..];
            false
        }
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                cur = krate.modules[cur].parent?;
                rest = &rest[1..];
            }
            false
        }
        "Self" => return None,
        _ => true,
    };
    walk(krate, cur, rest, relative, depth)
}

/// Follows `rest` down from module `cur`; `relative` when `rest` is the
/// whole path as written (no `crate::`, `self::` or `super::`).
fn walk(krate: &Crate, mut cur: usize, rest: &[String], relative: bool, depth: usize) -> Option<Resolved> {
    let mut first = relative;
    let mut rest = rest;
    while let Some(seg) = rest.first() {
        let module = &krate.modules[cur];
        if let Some(&child) = module.children.get(seg) {
            cur = child;
            rest = &rest[1..];
            first = false;
            continue;
        }
        if module.items.contains(seg) {
            return Some(Resolved::In(cur));
        }
        if let Some(import) = module.imports.get(seg) {
            let mut next = import.path.clone();
            next.extend(rest[1..].iter().cloned());
            return resolve(krate, cur, &next, depth + 1);
        }
        for glob in &module.globs {
            if let Some(Resolved::Module(m)) = resolve(krate, cur, &glob.path, depth + 1)
                && declares(krate, m, seg)
            {
                return walk(krate, m, rest, false, depth + 1);
            }
        }
        // The first segment of a relative path that is none of the
        // module's names: another crate, a local, a generic, the prelude.
        if first {
            return None;
        }
        // A name the module does not declare (made by a macro, say):
        // count it as the module's own.
        return Some(Resolved::In(cur));
    }
    Some(Resolved::Module(cur))
}

/// Whether module `m` declares `name` in any way.
fn declares(krate: &Crate, m: usize, name: &str) -> bool {
    let module = &krate.modules[m];
    module.children.contains_key(name) || module.items.contains(name) || module.imports.contains_key(name)
}

/// Every node in a cycle, as strongly connected components of two or
/// more nodes (Tarjan), each with one concrete cycle through its first
/// node and the reason for each edge.
pub fn cycles(graph: &Graph) -> Vec<String> {
    let nodes: Vec<&String> = graph.edges.keys().collect();
    let index_of: BTreeMap<&String, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut tarjan = Tarjan { index: vec![None; nodes.len()], low: vec![0; nodes.len()], ..Tarjan::default() };
    for v in 0..nodes.len() {
        if tarjan.index[v].is_none() {
            tarjan.connect(v, &nodes, &index_of, graph);
        }
    }
    let mut out = Vec::new();
    for component in tarjan.components.into_iter().filter(|c| c.len() > 1) {
        let members: BTreeSet<&String> = component.iter().map(|&i| nodes[i]).collect();
        let Some(start) = members.first().copied() else { continue };
        let cycle = shortest_cycle(graph, start, &members);
        let mut text = format!(
            "cycle among {{{}}}:\n",
            members.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        for pair in cycle.windows(2) {
            text.push_str(&format!("    {} -> {}   ({})\n", pair[0], pair[1], graph.why(&pair[0], &pair[1])));
        }
        out.push(text);
    }
    out
}

/// The shortest path from `start` back to itself inside `members` (BFS).
fn shortest_cycle(graph: &Graph, start: &String, members: &BTreeSet<&String>) -> Vec<String> {
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.next(&node) {
            if !members.contains(next) {
                continue;
            }
            if next == start {
                let mut path = vec![start.clone(), node.clone()];
                let mut at = node.clone();
                while let Some(p) = previous.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                path.reverse();
                return path;
            }
            if !previous.contains_key(next) && next != start {
                previous.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    vec![start.clone()]
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    stack: Vec<usize>,
    on_stack: BTreeSet<usize>,
    components: Vec<Vec<usize>>,
}

impl Tarjan {
    fn connect(&mut self, v: usize, nodes: &[&String], index_of: &BTreeMap<&String, usize>, graph: &Graph) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack.insert(v);
        for w in graph.next(nodes[v]).filter_map(|n| index_of.get(n).copied()) {
            match self.index[w] {
                None => {
                    self.connect(w, nodes, index_of, graph);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack.contains(&w) => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}
