//! Keeps functions short enough to read in one screen: no function in `src/` may run over
//! [`LIMIT`] lines, counted from its `fn` line to its closing brace. Tests are exempt, and so is
//! a function whose whole body is one `match` (a dispatch table reads fine at any length).

use std::path::{Path, PathBuf};

use crate::common::lexer::code_only;

/// The most lines a function may span.
const LIMIT: usize = 80;

/// The index of the brace that closes the one at `open`.
fn closing(code: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (k, &ch) in code.iter().enumerate().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    code.len() - 1
}

/// Whether `word` stands at `i` as a whole word.
fn word_at(code: &[char], i: usize, word: &str) -> bool {
    let ident = |ch: &char| ch.is_alphanumeric() || *ch == '_';
    let w: Vec<char> = word.chars().collect();
    code[i..].starts_with(&w)
        && !(i > 0 && ident(&code[i - 1]))
        && !code.get(i + w.len()).is_some_and(ident)
}

/// Where the body of the item starting at `from` opens, or `None` when the item ends (`;`)
/// without one.
fn body_open(code: &[char], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, &ch) in code.iter().enumerate().skip(from) {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ';' if depth == 0 => return None,
            '{' if depth == 0 => return Some(k),
            _ => {}
        }
    }
    None
}

/// Whether a function body (between its braces) is one `match` and nothing else.
fn match_only(body: &[char]) -> bool {
    let start = body.iter().position(|c| !c.is_whitespace());
    let Some(start) = start.filter(|&s| word_at(body, s, "match")) else {
        return false;
    };
    let Some(open) = body_open(body, start) else {
        return false;
    };
    let close = closing(body, open);
    body[close + 1..].iter().all(|c| c.is_whitespace())
}

/// `src/x/y.rs:123 fn name is 95 lines (limit 80)` for every function of `text` over
/// [`LIMIT`] lines, skipping items under `#[cfg(test)]` and match-only functions.
fn long_functions(path: &Path, text: &str) -> Vec<String> {
    let code = code_only(text);
    let mut line = Vec::with_capacity(code.len());
    let mut n = 1;
    for &ch in &code {
        line.push(n);
        n += usize::from(ch == '\n');
    }
    let test_gate: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if code[i..].starts_with(&test_gate)
            && let Some(open) = body_open(&code, i + test_gate.len())
        {
            i = closing(&code, open) + 1;
            continue;
        }
        if word_at(&code, i, "fn") {
            let name: String = code[i + 2..]
                .iter()
                .skip_while(|c| c.is_whitespace())
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            if let (false, Some(open)) = (name.is_empty(), body_open(&code, i + 2)) {
                let close = closing(&code, open);
                let lines = line[close] - line[i] + 1;
                if lines > LIMIT && !match_only(&code[open + 1..close]) {
                    out.push(format!(
                        "src/{}:{} fn {name} is {lines} lines (limit {LIMIT})",
                        path.display(),
                        line[i]
                    ));
                }
            }
        }
        i += 1;
    }
    out
}

/// Every function over the limit in `files`, tests' own files left out.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(p, _)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name != "tests.rs" && name != "test_support.rs"
        })
        .flat_map(|(p, t)| long_functions(p, t))
        .collect()
}

#[test]
fn no_function_is_over_80_lines() {
    let v = violations(&super::src_files());
    assert!(
        v.is_empty(),
        "split these into named steps:\n{}",
        v.join("\n")
    );
}

#[test]
fn the_length_checker_counts_from_fn_to_its_closing_brace() {
    let body = |lines: usize, line: &str| line.repeat(lines);
    let function = |name: &str, body_lines: usize| {
        format!(
            "fn {name}() {{\n{}}}\n",
            body(body_lines, "    let x = 1;\n")
        )
    };
    let file = |t: String| (PathBuf::from("x/y.rs"), t);
    // 81 lines, with braces in a string, a char, a raw string and comments that must not
    // close it early.
    let tricky = "fn long() {\n    let s = \"}\";\n    let c = '}';\n    let r = r#\"}\"#;\n    \
                  // }\n    /* } /* } */ } */\n    let l: &'static str = \"\\\"}\";\n"
        .to_string()
        + &body(73, "    let x = 1;\n")
        + "}\n";
    let v = violations(&[file(tricky)]);
    assert_eq!(v, ["src/x/y.rs:1 fn long is 81 lines (limit 80)"]);
    let v = violations(&[file(format!("\n{}", function("long", 79)))]);
    assert_eq!(v, ["src/x/y.rs:2 fn long is 81 lines (limit 80)"]);
    assert!(violations(&[file(function("fits", 78))]).is_empty());
    let table = format!(
        "fn dispatch(x: u8) -> u8 {{\n    match x {{\n{}        _ => 0,\n    }}\n}}\n",
        body(100, "        1 => 1,\n")
    );
    assert!(violations(&[file(table)]).is_empty());
    let tests = format!("#[cfg(test)]\nmod tests {{\n{}}}\n", function("t", 100));
    assert!(violations(&[file(tests)]).is_empty());
    let own = (PathBuf::from("x/tests.rs"), function("t", 100));
    assert!(violations(&[own]).is_empty());
}
