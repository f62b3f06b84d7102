//! No import circle of more than two files inside a stage: a file and the module that declares
//! it may lean on each other (a trait in `mod.rs`, a type in the file), but a loop through three
//! or more files means a stage whose parts cannot be read one at a time. `data`'s readers and
//! types are exempt: every reader builds the dataset type that dispatches to the readers.
//!
//! Paths are resolved as rustc would for the forms this crate uses (`crate::`, `super::`,
//! `self::`, a child module's name, braces and `as`), an item to the file that defines it, a
//! re-export followed to its source. Re-exports are the module's interface, not its code's
//! dependencies, so a `pub use` is followed but makes no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Stages whose internal circles are allowed (see the module comment).
const EXEMPT: [&str; 1] = ["data"];

/// A module: its path from the crate root and the code of its file before any test module.
struct Module {
    file: PathBuf,
    code: String,
}

type Tree = BTreeMap<Vec<String>, Module>;

fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

fn without_tests(text: &str) -> String {
    text.split("#[cfg(test)]").next().unwrap_or("").to_string()
}

/// Code with comments removed, line by line (string contents are kept; paths in them are rare
/// and would only add edges, never hide one).
fn code_lines(code: &str) -> impl Iterator<Item = &str> {
    code.lines().map(|l| l.split("//").next().unwrap_or(""))
}

/// Every `use` statement of `code` (without `pub`), with whether it was a re-export.
fn use_statements(code: &str) -> Vec<(bool, String)> {
    let text: Vec<&str> = code_lines(code).collect();
    let text = text.join("\n");
    let mut out = Vec::new();
    for (at, _) in text.match_indices("use ") {
        let before = &text[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let prefix = before[line_start..].trim();
        if !(prefix.is_empty() || prefix.starts_with("pub")) {
            continue;
        }
        let Some(end) = text[at..].find(';') else {
            continue;
        };
        let body: String = text[at + 4..at + end].split_whitespace().collect();
        out.push((prefix.starts_with("pub"), body));
    }
    out
}

/// `a::{b, c::{d, e as f}}` as the paths it names, each with the name it binds.
fn expand(tree: &str) -> Vec<(Vec<String>, String)> {
    let Some(open) = tree.find('{') else {
        let (path, alias) = match tree.split_once(" as ").or_else(|| tree.split_once("as")) {
            Some((p, a)) if tree.contains("as") && !p.ends_with(':') => (p, Some(a)),
            _ => (tree, None),
        };
        let segments: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let name = alias.map(String::from).or_else(|| segments.last().cloned());
        return vec![(segments, name.unwrap_or_default())];
    };
    let head = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let full = if p == "self" {
                head.to_string()
            } else {
                format!("{head}::{p}")
            };
            expand(&full)
        })
        .collect()
}

/// Whether `module`'s file defines `item` at its top level.
fn defines(module: &Module, item: &str) -> bool {
    code_lines(&module.code).any(|line| {
        let mut words = line.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!'));
        let mut saw_kind = false;
        for w in words.by_ref() {
            if saw_kind {
                return w == item;
            }
            saw_kind = matches!(
                w,
                "struct" | "enum" | "trait" | "fn" | "type" | "const" | "static" | "union"
            );
            if !(saw_kind || matches!(w, "" | "pub" | "crate" | "super" | "unsafe" | "async")) {
                return false;
            }
        }
        false
    }) || code_lines(&module.code).any(|l| l.starts_with(&format!("macro_rules! {item}")))
}

/// The file that `path`, written in module `from`, names (a module's file, or the file that
/// defines the item it ends in), if it lies in this crate.
fn resolve(tree: &Tree, from: &[String], path: &[String], depth: usize) -> Option<PathBuf> {
    if depth > 8 || path.is_empty() {
        return None;
    }
    let (mut at, rest): (Vec<String>, &[String]) = match path[0].as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.to_vec(), &path[1..]),
        "super" => {
            let mut at = from.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                at.pop();
                rest = &rest[1..];
            }
            (at, rest)
        }
        first => {
            let mut child = from.to_vec();
            child.push(first.to_string());
            if !tree.contains_key(&child) {
                return None; // another crate (std, burn, ...)
            }
            (from.to_vec(), path)
        }
    };
    let mut rest = rest;
    while let Some(next) = rest.first() {
        let mut child = at.clone();
        child.push(next.clone());
        if !tree.contains_key(&child) {
            break;
        }
        at = child;
        rest = &rest[1..];
    }
    let module = tree.get(&at)?;
    let Some(item) = rest.first() else {
        return Some(module.file.clone());
    };
    if defines(module, item) {
        return Some(module.file.clone());
    }
    // Re-exported or imported here: follow it to its source.
    for (_, statement) in use_statements(&module.code) {
        for (target, name) in expand(&statement) {
            if &name == item {
                return resolve(tree, &at, &target, depth + 1);
            }
        }
    }
    Some(module.file.clone())
}

/// Every path that starts with `crate::`, `super::` or `self::` in code outside `use`.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in code_lines(code).filter(|l| !l.trim_start().starts_with("use ")) {
        let mut rest = line;
        while let Some(at) = ["crate::", "super::", "self::"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        {
            let is_start = at == 0 || {
                let c = rest[..at].chars().last().unwrap_or(' ');
                !(c.is_alphanumeric() || c == '_' || c == ':')
            };
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if is_start {
                let segments: Vec<String> = tail[..len]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                out.push(segments);
            }
            rest = &tail[len.max(1)..];
        }
    }
    out
}

/// Import edges between files of the same stage.
fn edges(tree: &Tree) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut out: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (path, module) in tree {
        let mut targets = Vec::new();
        for (reexport, statement) in use_statements(&module.code) {
            if !reexport {
                targets.extend(expand(&statement).into_iter().map(|(p, _)| p));
            }
        }
        targets.extend(inline_paths(&module.code));
        for target in targets {
            let Some(file) = resolve(tree, path, &target, 0) else {
                continue;
            };
            let stage = |f: &Path| f.iter().next().map(|s| s.to_owned());
            if file != module.file && stage(&file) == stage(&module.file) {
                out.entry(module.file.clone()).or_default().insert(file);
            }
        }
    }
    out
}

/// Groups of files that import each other in a loop (strongly connected), largest first.
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    let reach = |from: &PathBuf| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(f) = stack.pop() {
            for next in edges.get(&f).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&PathBuf, BTreeSet<PathBuf>> =
        edges.keys().map(|f| (f, reach(f))).collect();
    let mut groups: Vec<Vec<PathBuf>> = Vec::new();
    let mut placed = BTreeSet::new();
    for (file, from_file) in &reached {
        if placed.contains(*file) || !from_file.contains(*file) {
            continue;
        }
        let group: Vec<PathBuf> = from_file
            .iter()
            .filter(|other| reached.get(other).is_some_and(|r| r.contains(*file)))
            .cloned()
            .collect();
        placed.extend(group.iter().cloned());
        groups.push(group);
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    groups
}

/// Every module of the crate but its roots (`lib.rs`, `main.rs`), test files left out.
fn source_tree() -> Tree {
    crate::layering::src_files()
        .into_iter()
        .filter(|(file, _)| {
            let name = file.to_string_lossy();
            !matches!(name.as_ref(), "lib.rs" | "main.rs")
                && !name.ends_with("tests.rs")
                && !name.ends_with("test_support.rs")
        })
        .map(|(file, text)| {
            let code = without_tests(&text);
            (module_path(&file), Module { file, code })
        })
        .collect()
}

#[test]
fn no_stage_has_an_import_circle_of_more_than_two_files() {
    let tree = source_tree();
    let edges = edges(&tree);
    assert!(
        edges.len() > 40,
        "only {} files import another",
        edges.len()
    );
    let long: Vec<String> = circles(&edges)
        .into_iter()
        .filter(|g| g.len() > 2)
        .filter(|g| !EXEMPT.iter().any(|s| g[0].starts_with(s)))
        .map(|g| {
            let names: Vec<String> = g.iter().map(|f| format!("src/{}", f.display())).collect();
            format!("{} files: {}", g.len(), names.join(", "))
        })
        .collect();
    assert!(
        long.is_empty(),
        "import circles; move what they share into one of them or a file below both:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_resolver_follows_the_paths_this_crate_writes() {
    let m = |file: &str, code: &str| Module {
        file: PathBuf::from(file),
        code: code.to_string(),
    };
    let path = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
    let mut tree = Tree::new();
    tree.insert(
        path("s"),
        m(
            "s/mod.rs",
            "mod a;\nmod b;\npub use a::Thing;\npub trait Face {}",
        ),
    );
    tree.insert(
        path("s/a"),
        m("s/a.rs", "use super::b::Other;\npub struct Thing;"),
    );
    tree.insert(
        path("s/b"),
        m(
            "s/b.rs",
            "use crate::s::{Thing, Face as F};\npub struct Other;",
        ),
    );
    tree.insert(
        path("s/c"),
        m("s/c.rs", "fn f() { let _ = super::a::Thing; }"),
    );
    let e = edges(&tree);
    let to = |from: &str| -> Vec<String> {
        e.get(Path::new(from))
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect()
    };
    // The re-export in mod.rs makes no edge; b's `Thing` resolves through it to a.rs.
    assert!(to("s/mod.rs").is_empty(), "{:?}", to("s/mod.rs"));
    assert_eq!(to("s/a.rs"), ["s/b.rs"]);
    assert_eq!(to("s/b.rs"), ["s/a.rs", "s/mod.rs"]);
    assert_eq!(to("s/c.rs"), ["s/a.rs"]);
    let groups = circles(&e);
    assert_eq!(groups[0].len(), 2, "{groups:?}");
    // A third file closing the loop makes a circle of three.
    tree.insert(
        path("s/a"),
        m("s/a.rs", "use super::c::f;\npub struct Thing;"),
    );
    tree.insert(
        path("s/c"),
        m("s/c.rs", "use super::b::Other;\npub fn f() {}"),
    );
    tree.insert(
        path("s/b"),
        m("s/b.rs", "use crate::s::Thing;\npub struct Other;"),
    );
    assert_eq!(circles(&edges(&tree))[0].len(), 3);
}
