//! Just enough of Rust's lexical grammar for the source checks: where comments, string
//! literals and char literals are, so that what they hold is not read as code (or is read as
//! the text it is).

/// `text` with every comment, string literal and char literal blanked to spaces (newlines
/// kept), so that braces inside them do not count and line numbers stay where they were.
pub fn code_only(text: &str) -> Vec<char> {
    scan(text).0
}

/// Every string literal of `text` (plain or raw, quotes included) with the line it starts on.
pub fn string_literals(text: &str) -> Vec<(usize, String)> {
    let (_, strings) = scan(text);
    let c: Vec<char> = text.chars().collect();
    strings
        .into_iter()
        .map(|(from, to)| {
            let line = 1 + c[..from].iter().filter(|&&ch| ch == '\n').count();
            (line, c[from..to.min(c.len())].iter().collect())
        })
        .collect()
}

/// `text` with comments and literals blanked, and the spans of its string literals.
fn scan(text: &str) -> (Vec<char>, Vec<(usize, usize)>) {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let mut strings = Vec::new();
    let mut blank = |from: usize, to: usize| {
        for ch in &mut out[from..to.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let find = |from: usize, pat: &str| -> usize {
        let p: Vec<char> = pat.chars().collect();
        (from..c.len())
            .find(|&k| c[k..].starts_with(&p))
            .map_or(c.len(), |k| k + p.len())
    };
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied();
        let prev = |k: usize| i.checked_sub(k).map(|j| c[j]);
        let end = if c[i] == '/' && at(1) == Some('/') {
            find(i, "\n") - 1
        } else if c[i] == '/' && at(1) == Some('*') {
            // Block comments nest.
            let (mut depth, mut k) = (0, i);
            while k < c.len() {
                if c[k..].starts_with(&['/', '*']) {
                    depth += 1;
                    k += 2;
                } else if c[k..].starts_with(&['*', '/']) {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    k += 1;
                }
            }
            k
        } else if c[i] == 'r' && raw_prefix(prev(1), prev(2)) && matches!(at(1), Some('"' | '#')) {
            let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
            if at(1 + hashes) != Some('"') {
                i += 1;
                continue;
            }
            let end = find(i + 2 + hashes, &format!("\"{}", "#".repeat(hashes)));
            strings.push((i, end));
            end
        } else if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            strings.push((i, k + 1));
            k + 1
        } else if c[i] == '\'' && at(1) == Some('\\') {
            find(i + 3, "'")
        } else if c[i] == '\'' && at(2) == Some('\'') {
            i + 3
        } else {
            // A lifetime, or plain code.
            i += 1;
            continue;
        };
        blank(i, end);
        i = end;
    }
    (out, strings)
}

/// Whether an `r` after `before` (and `before_that`) starts a raw string (`r"`, `br"`) rather
/// than ending an identifier.
fn raw_prefix(before: Option<char>, before_that: Option<char>) -> bool {
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    match before {
        Some('b') => !before_that.is_some_and(ident),
        Some(p) => !ident(p),
        None => true,
    }
}
