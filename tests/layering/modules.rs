//! A crate's module tree, read with `syn` from its root file: each module's
//! file, the names it defines, imports and re-exports, and every path its
//! code names (in items, expressions, types and macro bodies). Items under
//! `#[cfg(test)]` are left out: tests may reach anywhere.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// One `use` binding: the path it names.
#[derive(Debug, Clone)]
pub struct Import {
    pub path: Vec<String>,
}

/// One module: a file, or an inline `mod name { ... }` inside one.
#[derive(Debug)]
pub struct Module {
    /// `["crate", "mcp", "server"]`.
    pub path: Vec<String>,
    /// The file the module's code is in, relative to the workspace root.
    pub file: PathBuf,
    pub parent: Option<usize>,
    pub children: BTreeMap<String, usize>,
    /// Names of the items defined here (not modules, not imports).
    pub items: BTreeSet<String>,
    pub imports: BTreeMap<String, Import>,
    /// `use path::*`.
    pub globs: Vec<Import>,
    /// Every path the module's own code names, with what names it (for
    /// the report), as written.
    pub refs: Vec<Vec<String>>,
}

/// A crate: its modules, the root first.
#[derive(Debug)]
pub struct Crate {
    pub name: String,
    pub modules: Vec<Module>,
}

/// Reads the crate whose root file is `root` (relative to `workspace`).
pub fn read_crate(workspace: &Path, name: &str, root: &Path) -> Result<Crate, String> {
    let mut krate = Crate { name: name.to_string(), modules: Vec::new() };
    let file = parse_file(&workspace.join(root))?;
    let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
    load_module(workspace, &mut krate, None, vec!["crate".into()], root.to_path_buf(), dir, &file.items)?;
    Ok(krate)
}

fn parse_file(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    syn::parse_file(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// Adds a module with `items` (from `file`) and, recursively, its children.
/// `dir` is where its `mod name;` children are looked for.
fn load_module(
    workspace: &Path,
    krate: &mut Crate,
    parent: Option<usize>,
    path: Vec<String>,
    file: PathBuf,
    dir: PathBuf,
    items: &[syn::Item],
) -> Result<usize, String> {
    let id = krate.modules.len();
    krate.modules.push(Module {
        path: path.clone(),
        file: file.clone(),
        parent,
        children: BTreeMap::new(),
        items: BTreeSet::new(),
        imports: BTreeMap::new(),
        globs: Vec::new(),
        refs: Vec::new(),
    });
    let mut refs = Vec::new();
    let mut imports = BTreeMap::new();
    let mut globs = Vec::new();
    let mut names = BTreeSet::new();
    for item in items {
        if is_test_only(item_attrs(item)) {
            continue;
        }
        match item {
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                let mut child_path = path.clone();
                child_path.push(name.clone());
                let child = match &m.content {
                    Some((_, inner)) => {
                        let inner_dir = dir.join(&name);
                        load_module(workspace, krate, Some(id), child_path, file.clone(), inner_dir, inner)?
                    }
                    None => {
                        let child_file = module_file(workspace, &dir, &name, &m.attrs)?;
                        let parsed = parse_file(&workspace.join(&child_file))?;
                        let child_dir = if child_file.file_name().is_some_and(|f| f == "mod.rs") {
                            child_file.parent().map(Path::to_path_buf).unwrap_or_default()
                        } else {
                            dir.join(&name)
                        };
                        load_module(workspace, krate, Some(id), child_path, child_file, child_dir, &parsed.items)?
                    }
                };
                krate.modules[id].children.insert(name, child);
            }
            syn::Item::Use(u) => {
                let reexport = !matches!(u.vis, syn::Visibility::Inherited);
                add_use(&u.tree, u.leading_colon.is_some(), reexport, &mut imports, &mut globs, &mut refs);
            }
            other => {
                if let Some(name) = item_name(other) {
                    names.insert(name);
                }
                let mut collector = Collector { refs: &mut refs, imports: &mut imports, globs: &mut globs };
                collector.visit_item(other);
            }
        }
    }
    let module = &mut krate.modules[id];
    module.refs = refs;
    module.imports.extend(imports);
    module.globs = globs;
    module.items = names;
    Ok(id)
}

/// The file of `mod name;` declared in a module whose children live in
/// `dir`: `#[path = "..."]`, else `dir/name.rs`, else `dir/name/mod.rs`.
fn module_file(workspace: &Path, dir: &Path, name: &str, attrs: &[syn::Attribute]) -> Result<PathBuf, String> {
    for attr in attrs {
        if attr.path().is_ident("path")
            && let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
        {
            return Ok(normalize(&dir.join(s.value())));
        }
    }
    let flat = dir.join(format!("{name}.rs"));
    if workspace.join(&flat).is_file() {
        return Ok(flat);
    }
    let nested = dir.join(name).join("mod.rs");
    if workspace.join(&nested).is_file() {
        return Ok(nested);
    }
    Err(format!("module `{name}` declared in {} has no file", dir.display()))
}

/// `a/b/../c` as `a/c` (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Records a `use` tree's bindings. Leading `::` paths are other crates'.
fn add_use(
    tree: &syn::UseTree,
    leading_colon: bool,
    reexport: bool,
    imports: &mut BTreeMap<String, Import>,
    globs: &mut Vec<Import>,
    refs: &mut Vec<Vec<String>>,
) {
    if leading_colon {
        return;
    }
    let mut flat = Vec::new();
    flatten_use(tree, Vec::new(), &mut flat);
    for (path, binding) in flat {
        // A plain import is a dependency even if only its methods are used
        // (a trait); a re-export is naming, followed when others name it.
        if !reexport {
            refs.push(path.clone());
        }
        match binding {
            Binding::Name(name) => {
                imports.insert(name, Import { path });
            }
            Binding::Glob => globs.push(Import { path }),
            Binding::None => {}
        }
    }
}

enum Binding {
    Name(String),
    Glob,
    None,
}

fn flatten_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Binding)>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            flatten_use(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let ident = n.ident.to_string();
            if ident == "self" {
                if let Some(last) = prefix.last().cloned() {
                    out.push((prefix, Binding::Name(last)));
                }
            } else {
                let mut path = prefix;
                path.push(ident.clone());
                out.push((path, Binding::Name(ident)));
            }
        }
        syn::UseTree::Rename(r) => {
            let ident = r.ident.to_string();
            let mut path = prefix;
            if ident != "self" {
                path.push(ident);
            }
            let rename = r.rename.to_string();
            let binding = if rename == "_" { Binding::None } else { Binding::Name(rename) };
            out.push((path, binding));
        }
        syn::UseTree::Glob(_) => out.push((prefix, Binding::Glob)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix.clone(), out);
            }
        }
    }
}

/// Collects the paths named inside one item (skipping `#[cfg(test)]`
/// parts); `use` declarations inside bodies count as the module's.
struct Collector<'a> {
    refs: &'a mut Vec<Vec<String>>,
    imports: &'a mut BTreeMap<String, Import>,
    globs: &'a mut Vec<Import>,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        if let syn::Item::Use(u) = item {
            add_use(&u.tree, u.leading_colon.is_some(), false, self.imports, self.globs, self.refs);
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs: &[syn::Attribute] = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !is_test_only(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs: &[syn::Attribute] = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !is_test_only(attrs) {
            syn::visit::visit_trait_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            self.refs.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        scan_tokens(mac.tokens.clone(), self.refs);
    }
}

/// The `a::b::c` paths in a macro body, which `syn` cannot parse as code
/// (paths after a leading `::` are other crates').
fn scan_tokens(tokens: TokenStream, refs: &mut Vec<Vec<String>>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let is_colon = |i: usize| matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':');
    let mut i = 0;
    while i < trees.len() {
        match &trees[i] {
            TokenTree::Group(g) => {
                scan_tokens(g.stream(), refs);
                i += 1;
            }
            TokenTree::Ident(ident) => {
                let leading = i >= 2 && is_colon(i - 1) && is_colon(i - 2);
                let mut path = vec![ident.to_string()];
                let mut j = i + 1;
                while is_colon(j) && is_colon(j + 1) {
                    let Some(TokenTree::Ident(next)) = trees.get(j + 2) else { break };
                    path.push(next.to_string());
                    j += 3;
                }
                if path.len() > 1 && !leading {
                    refs.push(path);
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

/// The attributes of any item.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The name an item defines in its module's namespace, if any.
fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::ExternCrate(i) => return Some(i.rename.as_ref().map_or(&i.ident, |r| &r.1).to_string()),
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => return i.ident.as_ref().map(ToString::to_string),
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// `#[cfg(test)]` or `#[cfg(all(test, ...))]`: compiled for tests only.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let syn::Meta::List(list) = &attr.meta else { return false };
        let text: String = list.tokens.to_string().chars().filter(|c| !c.is_whitespace()).collect();
        text == "test" || (text.starts_with("all(") && text.split([',', '(', ')']).any(|t| t == "test") && !text.contains("not(test"))
    })
}
