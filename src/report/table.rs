//! Tables and pages shared by every report: Markdown and HTML tables, the reading order of
//! model roles, and self-contained HTML pages with inlined SVG charts.

use std::collections::BTreeMap;
use std::path::Path;

/// A table of text cells that renders as Markdown (first column left-aligned, the rest right)
/// or as HTML, so the Markdown and HTML reports show the same rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<&'static str>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.header.join(" | "));
        for i in 0..self.header.len() {
            s += if i == 0 { " --- |" } else { " ---: |" };
        }
        s += "\n";
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }

    /// An HTML `<table>` with escaped cells.
    pub fn html(&self) -> String {
        let cells = |tag: &str, row: &[String]| -> String {
            row.iter()
                .map(|c| format!("<{tag}>{}</{tag}>", html_escape(c)))
                .collect()
        };
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut h = format!("<table><tr>{}</tr>\n", cells("th", &header));
        for r in &self.rows {
            h += &format!("<tr>{}</tr>\n", cells("td", r));
        }
        h + "</table>\n"
    }
}

/// The entries of a per-role map in reading order: teachers first, then students, then the
/// rest, alphabetically within each group.
pub fn by_role<V>(models: &BTreeMap<String, V>) -> Vec<(&String, &V)> {
    // The losses experiment's second student (`cnn_...`) follows the first, each alone first.
    let rank = |role: &str| match role {
        "teacher" | "ensemble" | "single" => 0,
        "student_full" => 1,
        "student" | "student_jitter" | "student_mixup" | "student_longer" => 2,
        "distilled" => 3,
        r if r.starts_with("distilled_") => 4,
        "cnn_student" => 5,
        "cnn_distilled" => 6,
        r if r.starts_with("cnn_distilled_") => 7,
        _ => 8,
    };
    let mut v: Vec<_> = models.iter().collect();
    v.sort_by_key(|(k, _)| (rank(k), (*k).clone()));
    v
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A complete, self-contained HTML page (inline styles, no scripts, no external files).
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{margin:1.5em 0}}svg{{max-width:100%;height:auto}}\
         .headline{{font-size:1.45em;font-weight:600;line-height:1.4;margin:0 0 .4em}}.meta{{color:#555;margin:0 0 1em}}\
         figcaption{{color:#444}}</style>\n\
         </head><body>\n{body}</body></html>\n",
        html_escape(title)
    )
}

/// The SVG file `dir/name` inlined as a captioned figure (empty if it cannot be read).
pub fn html_figure(dir: &Path, name: &str) -> String {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(svg) => {
            let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            format!(
                "<figure>{body}<figcaption>{}</figcaption></figure>\n",
                html_escape(name)
            )
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_markdown_and_escaped_html() {
        let t = Table {
            header: vec!["model", "errors"],
            rows: vec![vec!["a<b".into(), "3".into()]],
        };
        assert_eq!(
            t.markdown(),
            "| model | errors |\n| --- | ---: |\n| a<b | 3 |\n"
        );
        let h = t.html();
        assert!(
            h.contains("<td>a&lt;b</td><td>3</td>") && h.contains("<th>errors</th>"),
            "{h}"
        );
        let page = html_page("x & y", &h);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<title>x &amp; y</title>"));
        assert!(!page.contains("<script"));
    }
}
