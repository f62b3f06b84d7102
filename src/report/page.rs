//! The report as a person reads it, in Markdown and as one self-contained HTML page: the
//! headline first, then what distillation changed, errors per class, training, what the
//! teacher knows, confusion counts, and last how the run was made.

use std::fmt::Write as _;
use std::path::Path;

use super::{Report, html_escape, html_page};

/// Every chart of a report in reading order: section, file stem, caption.
const SECTIONS: [(&str, &[(&str, &str)]); 4] = [
    (
        "What distillation changed",
        &[
            (
                "changed",
                "Test images per true class that the distilled student gets right and the \
                 student alone wrong (fixed), and the reverse (broken).",
            ),
            (
                "changed_gallery",
                "The first fixed and broken test images, each captioned true class: the \
                 student alone's answer \u{2192} the distilled student's.",
            ),
            (
                "errors_moved",
                "Where the errors moved: for each true class (row) and wrong answer (column), \
                 the distilled student's count minus the student alone's. Green cells are \
                 mistakes distillation removed, red ones mistakes it added.",
            ),
        ],
    ),
    (
        "Test errors per class",
        &[(
            "class_errors",
            "Test errors per true class of each model, side by side.",
        )],
    ),
    (
        "Training",
        &[(
            "learning_curves",
            "Training loss per epoch (log scale: the distilled student's loss, scaled by \
             T\u{b2}, is not on the others' scale), and validation error where there is a \
             validation split.",
        )],
    ),
    (
        "Dark knowledge",
        &[
            (
                "soften",
                "The teacher's probabilities for one test image as the temperature rises: the \
                 small ones are what the student learns beyond the answer.",
            ),
            (
                "similarity_teacher",
                "The teacher's mean soft targets per true class. The diagonal is gray and off \
                 the colour scale, which is logarithmic, so that the similarities between \
                 classes show.",
            ),
        ],
    ),
];

impl Report {
    /// The headline's text, or a plain title where the report has none.
    pub fn headline_text(&self) -> String {
        match &self.headline {
            Some(h) => h.text.clone(),
            None => self.title(),
        }
    }

    /// The "what distillation changed" counts: a header of classes then `all`, and the rows
    /// fixed, broken and their difference. Classes run across so that the table stays short.
    pub(super) fn changed_grid(&self) -> Option<(Vec<String>, Vec<Vec<String>>)> {
        let c = self.changed.as_ref()?;
        let mut header = vec!["true class".to_string()];
        header.extend((0..c.fixed.len()).map(|k| k.to_string()));
        header.push("all".into());
        let row = |name: &str, v: &dyn Fn(usize) -> i64, all: i64| {
            let mut r = vec![name.to_string()];
            r.extend((0..c.fixed.len()).map(|k| v(k).to_string()));
            r.push(all.to_string());
            r
        };
        let (f, b) = (c.total_fixed() as i64, c.total_broken() as i64);
        let rows = vec![
            row("fixed", &|k| c.fixed[k] as i64, f),
            row("broken", &|k| c.broken[k] as i64, b),
            row(
                "fixed \u{2212} broken",
                &|k| c.fixed[k] as i64 - c.broken[k] as i64,
                f - b,
            ),
        ];
        Some((header, rows))
    }

    /// A sentence in place of a chart that was not drawn, for the charts that can be missing.
    fn missing_chart(&self, stem: &str) -> Option<String> {
        let no_images = self.dataset.image[0] < 2 || self.dataset.image[1] < 2;
        match stem {
            "changed" | "errors_moved" if self.changed.is_some() => {
                Some("No test image changed between the two students: no chart.".into())
            }
            "changed_gallery" if self.changed.is_some() && no_images => {
                Some("The examples are not images: no gallery.".into())
            }
            _ => None,
        }
    }

    /// The sentence where a validation curve would be.
    pub(super) fn validation_sentence(&self) -> Option<String> {
        (self.dataset.validation_size == 0).then(|| {
            "This run has no validation split (all training images are fitted), so there are \
             no validation-error curves; the test set is kept for the results above."
                .to_string()
        })
    }

    pub(super) fn has_chart(&self, file: &str) -> bool {
        self.dark_knowledge
            .as_ref()
            .is_some_and(|d| d.charts.iter().any(|c| c == file))
    }

    /// A self-contained HTML page: the headline first, then the tables and every chart inlined
    /// as SVG, so it opens in a browser with no network and no other file.
    pub fn html(&self, dir: &Path) -> String {
        let esc = html_escape;
        let mut h = format!(
            "<p class=\"headline\" id=\"headline\">{}</p>\n<p class=\"meta\">{}, seed {}: {} \
             training, {} validation and {} test examples.</p>\n",
            esc(&self.headline_text()),
            esc(&self.title()),
            self.seed,
            self.dataset.train_size,
            self.dataset.validation_size,
            self.dataset.test_size
        );
        h += &format!("<p class=\"meta\">{}</p>\n", esc(&self.recipe_line()));
        h += &self.results_table().html();
        if let Some(c) = &self.teacher_choice {
            h += &format!(
                "<h2>Teacher chosen on validation</h2>\n<p>{}</p>\n{}",
                esc(&c.sentence()),
                c.table().html()
            );
        }
        if let Some(c) = &self.distill_choice {
            h += &format!(
                "<h2>Temperature and alpha chosen on validation</h2>\n<p>{}</p>\n{}",
                esc(&c.sentence()),
                c.table().html()
            );
        }
        for (title, charts) in SECTIONS {
            h += &format!("<h2>{}</h2>\n", esc(title));
            if title == "What distillation changed" {
                h += &self.changed_html();
            }
            for (stem, caption) in charts {
                h += &self.figure_html(dir, stem, caption);
            }
            if let (true, Some(s)) = (title == "Training", self.validation_sentence()) {
                h += &format!("<p>{}</p>\n", esc(&s));
            }
            if title == "Dark knowledge" {
                h += &self.dark_knowledge_html();
            }
        }
        h += &self.confusion_html(dir);
        h += &self.run_html();
        html_page(&self.title(), &h)
    }

    fn changed_html(&self) -> String {
        match (&self.changed, self.changed_grid()) {
            (Some(c), Some((header, rows))) => {
                let cells = |tag: &str, r: &[String]| -> String {
                    r.iter()
                        .map(|v| format!("<{tag}>{}</{tag}>", html_escape(v)))
                        .collect()
                };
                let body: String = rows
                    .iter()
                    .map(|r| format!("<tr>{}</tr>\n", cells("td", r)))
                    .collect();
                format!(
                    "<p>{}</p>\n<table id=\"changed-counts\"><tr>{}</tr>\n{body}</table>\n",
                    html_escape(&c.sentence()),
                    cells("th", &header)
                )
            }
            _ => "<p>This run has no student alone and distilled student to compare.</p>\n".into(),
        }
    }

    /// The chart `stem` inlined with its caption and how many values it draws, or the
    /// sentence that stands in for it.
    fn figure_html(&self, dir: &Path, stem: &str, caption: &str) -> String {
        let file = format!("{stem}.svg");
        let values = self
            .dark_knowledge
            .as_ref()
            .and_then(|d| d.chart_values.get(stem).copied());
        match std::fs::read_to_string(dir.join(&file)) {
            Ok(svg) if self.has_chart(&file) => {
                let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
                format!(
                    "<figure id=\"{stem}\" data-values=\"{}\">{body}<figcaption>{}</figcaption>\
                     </figure>\n",
                    values.unwrap_or(0),
                    html_escape(caption)
                )
            }
            _ => self
                .missing_chart(stem)
                .map(|s| format!("<p>{}</p>\n", html_escape(&s)))
                .unwrap_or_default(),
        }
    }

    fn dark_knowledge_html(&self) -> String {
        let Some(dk) = &self.dark_knowledge else {
            return String::new();
        };
        let items: String = dk
            .summary()
            .iter()
            .map(|l| format!("<li>{}</li>", html_escape(l)))
            .collect();
        format!("<ul>{items}</ul>\n")
    }

    /// Each model's confusion counts, folded away: the errors-moved matrix above says what
    /// changed, these are there to look up.
    fn confusion_html(&self, dir: &Path) -> String {
        let mut inner = String::new();
        for (name, _) in self.ordered_models() {
            let stem = format!("confusion_{name}");
            inner += &self.figure_html(
                dir,
                &stem,
                &format!("{name}: test images per true class (row) and answer (column)."),
            );
        }
        if inner.is_empty() {
            return inner;
        }
        format!(
            "<h2>Confusion counts</h2>\n<details><summary>One matrix of counts per model \
             (diagonal in gray, off the colour scale)</summary>\n{inner}</details>\n"
        )
    }

    fn run_html(&self) -> String {
        let esc = html_escape;
        let mut h = format!(
            "<h2>Run</h2>\n<p>T = {}, alpha = {}; seed {}; backend {}, {} threads; {}; commit \
             {}; {:.1} s in all.</p>\n",
            self.temperature,
            self.alpha,
            self.seed,
            esc(&self.backend),
            self.environment.threads,
            esc(&self.environment.hardware),
            esc(&self.git_commit),
            self.total_seconds
        );
        let mut items: Vec<String> = Vec::new();
        if let Some(b) = &self.bias_adjust {
            items.push(self.bias_sentence(b));
        }
        items.extend(self.findings.iter().map(|(k, v)| format!("{k}: {v:.4}")));
        items.extend(self.notes.iter().map(|n| format!("note: {n}")));
        if !items.is_empty() {
            let li: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", esc(i)))
                .collect();
            let _ = writeln!(h, "<ul>{li}</ul>");
        }
        h
    }

    pub(super) fn bias_sentence(&self, b: &crate::eval::BiasAdjustReport) -> String {
        format!(
            "Bias adjustment: classes {:?} raised by {:.2} ({}); validation errors {} -> {}.",
            b.classes, b.shift, b.method, b.validation_errors_before, b.validation_errors_after
        )
    }
}
