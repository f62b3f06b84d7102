//! Keeps the architecture true: data flows one way through the stages, each stage imports only
//! the stages below it, no source file outgrows 600 lines and no function 80 (`fn_length`). The
//! stage order lives here and in `docs/architecture.md`.

use std::path::{Path, PathBuf};

mod fn_length;

/// The stages, lowest first. A module may import its own stage and any stage before it.
const STAGES: [&str; 9] = [
    "compute",
    "data",
    "model",
    "distill",
    "train",
    "eval",
    "report",
    "experiment",
    "cli",
];

/// Modules under every stage: any stage may use them, and they use no stage.
const FOUNDATION: [&str; 2] = ["error", "fsutil"];

/// Rank of a top-level module: foundation modules below every stage, then the stages in order.
fn rank(module: &str) -> Option<usize> {
    if FOUNDATION.contains(&module) {
        return Some(0);
    }
    STAGES.iter().position(|s| *s == module).map(|i| i + 1)
}

/// The top-level module a source file belongs to (`src/data/idx.rs` -> `data`,
/// `src/fsutil.rs` -> `fsutil`), or `None` for the crate root and the binary.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every top-level module that `line` names through `crate::` (the library's own paths), in
/// both `crate::a::b` and `crate::{a, b::c}` forms. Comments are ignored.
fn crate_imports(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    found.push(name.to_string());
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
        rest = after;
    }
    found
}

/// `(importing file, imported module)` for every import of a stage above the importer's own.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let Some(module) = module_of(path) else {
            continue;
        };
        let Some(own) = rank(&module) else {
            out.push(format!(
                "src/{} belongs to module `{module}`, which is neither a stage nor a foundation \
                 module: add it to tests/it/layering.rs and docs/architecture.md",
                path.display()
            ));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for imported in crate_imports(line) {
                let Some(theirs) = rank(&imported) else {
                    continue;
                };
                // Foundation modules (rank 0) sit below every stage, so reaching into any
                // stage from one is upward too.
                if theirs > own {
                    out.push(format!(
                        "src/{}:{} (stage `{module}`) imports crate::{imported} (src/{imported}/), \
                         a stage above it",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
        }
    }
}

/// Every source file under `src/`, its path relative to `src/`, with its text.
pub(crate) fn src_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
}

#[test]
fn no_stage_imports_a_stage_above_it() {
    let v = violations(&src_files());
    assert!(v.is_empty(), "upward imports:\n{}", v.join("\n"));
}

#[test]
fn the_checker_catches_upward_imports_in_either_form() {
    let file = |p: &str, t: &str| (PathBuf::from(p), t.to_string());
    let bad = [
        file("data/split.rs", "use crate::model::Network;"),
        file("model/mod.rs", "use crate::{data::Split, train::Stepper};"),
        file("fsutil.rs", "let x = crate::report::Table::default();"),
    ];
    let v = violations(&bad);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(
        v[0].contains("src/data/split.rs:1") && v[0].contains("crate::model"),
        "{v:?}"
    );
    assert!(
        v[1].contains("crate::train") && !v[1].contains("crate::data"),
        "{v:?}"
    );
    let good = [
        file(
            "train/run.rs",
            "use crate::{data::Split, distill::Objective, error::Result};",
        ),
        file(
            "cli/mod.rs",
            "use crate::experiment::reproduce; // crate::cli is fine",
        ),
        file(
            "eval/mod.rs",
            "// use crate::report::Report; only a comment",
        ),
    ];
    assert!(violations(&good).is_empty(), "{:?}", violations(&good));
    let stray = [file("misc.rs", "use crate::data::Split;")];
    assert!(violations(&stray)[0].contains("neither a stage"));
}

#[test]
fn the_binary_only_dispatches_to_the_cli() {
    let main =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs")).unwrap();
    assert!(
        main.contains("\nmod cli;"),
        "src/main.rs declares no cli module"
    );
    for line in main.lines().filter(|l| l.contains("distill::")) {
        assert!(
            line.contains("distill::Error") || line.trim_start().starts_with("//"),
            "src/main.rs reaches past the cli: {line}"
        );
    }
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        !lib.contains("mod cli"),
        "the command line belongs to the binary, not the library"
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = src_files()
        .iter()
        .filter(|(_, t)| t.lines().count() > 600)
        .map(|(p, t)| format!("src/{} has {} lines", p.display(), t.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "split these by concept:\n{}",
        long.join("\n")
    );
}
