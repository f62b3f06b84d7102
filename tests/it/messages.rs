//! The library speaks without flags: a message built in a library stage names a setting through
//! `distill::error::Setting`, and only the command line (`src/cli/`, part of the binary) turns
//! it into a flag. This scans every string literal under `src/` outside the command line.

use std::path::{Path, PathBuf};

use crate::common::lexer::string_literals;

/// `file:line: "literal"` for every literal in `files` that names a flag (`--` then a letter).
fn flags_named(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        for (line, literal) in string_literals(text) {
            let names_flag = literal
                .match_indices("--")
                .any(|(at, _)| literal[at + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
            if names_flag {
                out.push(format!("src/{}:{line}: {literal:?}", path.display()));
            }
        }
    }
    out
}

#[test]
fn no_library_message_names_a_flag() {
    // The command line (`src/cli/`, `src/main.rs`) is the binary's: flags are its words.
    let files: Vec<(PathBuf, String)> = crate::layering::src_files()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("cli") && path != Path::new("main.rs"))
        .collect();
    let found = flags_named(&files);
    assert!(
        found.is_empty(),
        "library strings that name a flag; name the setting with distill::error::Setting and \
         let src/cli/ map it to its flag:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_finds_flags_in_literals_only() {
    let file = |t: &str| vec![(PathBuf::from("x.rs"), t.to_string())];
    let hits = |t: &str| flags_named(&file(t));
    assert_eq!(hits("let a = \"give --out DIR\";").len(), 1);
    assert_eq!(hits("let a = r#\"say \"--alpha\"\"#;").len(), 1);
    assert_eq!(hits("let a = \"line one\\\n  and --jitter N\";").len(), 1);
    assert!(hits("x\ny(\"a\", \"b --c\")")[0].starts_with("src/x.rs:2:"));
    assert!(hits("// give --out DIR\n/// --alpha\n/* --x */ let y = 1;").is_empty());
    assert!(hits("let q = '\"'; let a = \"no flag -- here\"; fn f<'a>(x: &'a str) {}").is_empty());
    assert!(hits("let a = \"i -= 1; --5\"; let b = '--';").is_empty());
}
