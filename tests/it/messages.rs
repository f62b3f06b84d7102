//! The library speaks without flags: a message built in a library stage names a setting through
//! `distill::error::Setting`, and only the command line (`src/cli/`, part of the binary) turns
//! it into a flag. This scans every string literal under `src/` outside the command line.

use std::path::{Path, PathBuf};

/// The string literals of Rust source `text` with the line each starts on. Comments, char
/// literals and lifetimes are skipped; escapes are kept as written, which is enough to find
/// words in them.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            // A char literal ('a', '\n', '"') is at most a few characters to its closing quote;
            // a lifetime ('a) has none.
            let end = (i + 2..(i + 12).min(chars.len())).find(|&j| chars[j] == '\'');
            i = match end {
                Some(j) if chars[i + 1] == '\\' || j == i + 2 => j + 1,
                _ => i + 1,
            };
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && is_start(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            let open = i + 1 + hashes;
            if chars.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let body_start = open + 1;
            let rest: String = chars[body_start..].iter().collect();
            let len = rest.find(&close).unwrap_or(rest.len());
            let body: String = rest.chars().take(len).collect();
            let start_line = line;
            line += body.matches('\n').count();
            out.push((start_line, body.clone()));
            i = body_start + body.chars().count() + close.chars().count();
        } else if c == '"' {
            let (start_line, mut body) = (line, String::new());
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    body.push(chars[i]);
                    i += 1;
                }
                line += usize::from(chars[i] == '\n');
                body.push(chars[i]);
                i += 1;
            }
            out.push((start_line, body));
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Whether position `i` begins a token (so the `r` of `for"` is not a raw string).
fn is_start(chars: &[char], i: usize) -> bool {
    i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

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

fn library_sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        if relative.starts_with("cli") || relative == Path::new("main.rs") {
            continue;
        }
        if path.is_dir() {
            library_sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((relative, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn no_library_message_names_a_flag() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    library_sources(&root, &root, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
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
