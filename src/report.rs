//! Reports: what a run measured, with the context needed to trust and reproduce it (hardware,
//! backend, seed, commit, versions), as `report.json` and `report.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::ModelSpec;

/// One model's results in a report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelReport {
    /// Architecture spec (`mlp:...`), or a description for ensembles.
    pub spec: String,
    /// Test-set errors.
    pub test_errors: usize,
    /// Test examples evaluated.
    pub test_examples: usize,
    /// Test errors per true class.
    pub class_errors: Vec<usize>,
    /// Test examples per true class.
    pub class_examples: Vec<usize>,
    /// Weights and biases.
    pub params: usize,
    /// Wall-clock training seconds (0 when the model was reused).
    pub train_seconds: f64,
    /// Median batch-1 inference time per example in microseconds.
    pub infer_us_per_example: f64,
    /// Mean negative log-likelihood on the test set.
    pub test_nll: f64,
    /// Validation errors after the last epoch, if trained here.
    pub validation_errors: Option<usize>,
    /// `confusion[true][predicted]` on the test set.
    pub confusion: Vec<Vec<usize>>,
    /// Where the model directory is.
    pub dir: String,
    /// ReLU units per hidden layer that never fire on the validation images (the first 5,000
    /// training images when there is no validation split; empty for an ensemble or a mean of
    /// models). Many of them mean capacity lost to oversized early steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent_units: Vec<usize>,
}

impl ModelReport {
    /// A warning for each hidden layer where at least a tenth of the units never fire (see
    /// `silent_units`), naming the remedy.
    pub fn silent_unit_warnings(&self, name: &str) -> Vec<String> {
        let Ok(spec) = self.spec.parse::<ModelSpec>() else {
            return Vec::new();
        };
        spec.hidden
            .iter()
            .zip(&self.silent_units)
            .enumerate()
            .filter(|(_, (width, silent))| **silent * 10 >= **width)
            .map(|(layer, (width, silent))| {
                format!(
                    "{name}: {silent} of the {width} ReLU units of hidden layer {} never fire \
                     (capacity lost, usually to oversized early steps; \
                     a learning-rate warm-up (--warmup-epochs) or a lower rate prevents it)",
                    layer + 1
                )
            })
            .collect()
    }
}

/// Where and with what a run was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// CPU model and core count, or the GPU.
    pub hardware: String,
    /// Compute backend.
    pub backend: String,
    /// Git commit the binary was built from (with `-dirty` if tracked files differed), or "unknown".
    pub git_commit: String,
    /// Versions of distill and burn.
    pub versions: BTreeMap<String, String>,
    /// Operating system and architecture.
    pub os: String,
}

impl Environment {
    /// Describes the current process's environment for the given backend.
    pub fn detect(backend: &str) -> Environment {
        let mut versions = BTreeMap::new();
        versions.insert("distill".into(), env!("CARGO_PKG_VERSION").into());
        versions.insert("burn".into(), "0.22.1".into());
        Environment {
            hardware: hardware(),
            backend: backend.into(),
            git_commit: git_commit(),
            versions,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

fn hardware() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// The commit the binary was built from (stamped by `build.rs`), not whatever the working
/// tree holds when the run starts.
fn git_commit() -> String {
    env!("DISTILL_GIT_COMMIT").to_string()
}

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
    let rank = |role: &str| match role {
        "teacher" | "ensemble" | "single" => 0,
        "student_full" => 1,
        "student" | "student_jitter" => 2,
        "distilled" => 3,
        _ => 4,
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
         th:first-child,td:first-child{{text-align:left}}figure{{margin:1.5em 0}}svg{{max-width:100%;height:auto}}</style>\n\
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

/// A complete experiment report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Experiment name.
    pub experiment: String,
    /// Preset name.
    pub preset: String,
    /// Seed of the run.
    pub seed: u64,
    /// Distillation temperature.
    pub temperature: f32,
    /// Soft-target weight.
    pub alpha: f32,
    /// Compute backend.
    pub backend: String,
    /// Git commit.
    pub git_commit: String,
    /// Hardware, versions and OS.
    pub environment: Environment,
    /// Dataset summary.
    pub dataset: DatasetInfo,
    /// Results per model role (`teacher`, `student`, `distilled`, ...).
    pub models: BTreeMap<String, ModelReport>,
    /// The full configuration of the run, as written to `config.toml`.
    pub config: serde_json::Value,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Free-form observations (cache hits, reused models, ...).
    pub notes: Vec<String>,
    /// What the teacher knows beyond its top answer, and how much of it the students took on.
    #[serde(default)]
    pub dark_knowledge: Option<DarkKnowledge>,
    /// The bias shift applied to classes missing from the transfer set, if any.
    #[serde(default)]
    pub bias_adjust: Option<BiasAdjustReport>,
    /// Recipe-specific figures (share of the ensemble's gain kept, fraction of 3s right, ...).
    #[serde(default)]
    pub findings: BTreeMap<String, f64>,
}

/// How the output biases of classes missing from a transfer set were raised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BiasAdjustReport {
    /// Classes whose bias was raised.
    pub classes: Vec<usize>,
    /// The shift added to their biases.
    pub shift: f32,
    /// How the shift was chosen.
    pub method: String,
    /// Validation errors before the shift.
    pub validation_errors_before: usize,
    /// Validation errors after the shift.
    pub validation_errors_after: usize,
}

/// The teacher's soft knowledge as a report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DarkKnowledge {
    /// Test index of the image whose softened probabilities are shown.
    pub soften_index: usize,
    /// Its true class.
    pub soften_label: usize,
    /// Temperatures shown.
    pub soften_temperatures: Vec<f64>,
    /// `soften_probs[k][c]`: the teacher's probability of class `c` at temperature `k`.
    pub soften_probs: Vec<Vec<f64>>,
    /// Other classes, most probable first, at each temperature.
    pub soften_ranking: Vec<Vec<usize>>,
    /// Temperature of the similarity matrix.
    pub similarity_temperature: f64,
    /// Teacher's mean soft targets per true class (rows sum to 1).
    pub similarity: Vec<Vec<f64>>,
    /// Most similar class pairs `(a, b, score)`.
    pub similar_pairs: Vec<(usize, usize, f64)>,
    /// Temperature at which agreement is measured (the distillation T).
    pub agreement_temperature: f64,
    /// Per other model: mean KL(teacher_T || model_T) and top-1 agreement on the test set.
    pub agreement_with_teacher: BTreeMap<String, crate::eval::Agreement>,
    /// Chart files written beside the report.
    pub charts: Vec<String>,
}

impl DarkKnowledge {
    /// One sentence per finding, for the Markdown and HTML reports.
    pub fn summary(&self) -> Vec<String> {
        let mut v = Vec::new();
        for ((t, p), r) in self
            .soften_temperatures
            .iter()
            .zip(&self.soften_probs)
            .zip(&self.soften_ranking)
        {
            let top: Vec<String> = r
                .iter()
                .take(4)
                .map(|c| format!("{c} ({:.1e})", p[*c]))
                .collect();
            v.push(format!(
                "Teacher on test image {} (a {}) at T = {t}: p({}) = {:.4}; other classes most probable first: {}",
                self.soften_index,
                self.soften_label,
                self.soften_label,
                p[self.soften_label],
                top.join(", ")
            ));
        }
        let pairs: Vec<String> = self
            .similar_pairs
            .iter()
            .map(|(a, b, s)| format!("{a}~{b} ({s:.1e})"))
            .collect();
        v.push(format!(
            "Most similar class pairs in the teacher's soft targets at T = {}: {}",
            self.similarity_temperature,
            pairs.join(", ")
        ));
        for (name, a) in &self.agreement_with_teacher {
            v.push(format!(
                "{name} vs teacher at T = {}: mean KL {:.4} nats, top-1 agreement {:.2}%",
                self.agreement_temperature,
                a.mean_kl,
                100.0 * a.top1_agreement
            ));
        }
        v
    }
}

impl Report {
    /// Writes `report.json` and `report.md` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::fsutil::write_json(&dir.join("report.json"), self)?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        write_atomic(&dir.join("report.html"), self.html(dir).as_bytes())
    }

    /// A self-contained HTML page: the tables, and every SVG chart in `dir` inlined, so it opens
    /// in a browser with no network and no other file.
    pub fn html(&self, dir: &Path) -> String {
        let esc = html_escape;
        let mut h = format!(
            "<h1>distill: {} ({} preset)</h1>\n",
            esc(&self.experiment),
            esc(&self.preset)
        );
        h += &self.results_table().html();
        h += &format!(
            "<p>T = {}, alpha = {}; seed {}; backend {}; {}; commit {}.</p>\n",
            self.temperature,
            self.alpha,
            self.seed,
            esc(&self.backend),
            esc(&self.environment.hardware),
            esc(&self.git_commit)
        );
        if let Some(dk) = &self.dark_knowledge {
            h += &format!(
                "<h2>Dark knowledge</h2>\n<ul>{}</ul>\n",
                dk.summary()
                    .iter()
                    .map(|l| format!("<li>{}</li>", esc(l)))
                    .collect::<String>()
            );
            for chart in dk.charts.iter().filter(|c| c.ends_with(".svg")) {
                h += &html_figure(dir, chart);
            }
        }
        html_page(&format!("distill: {}", self.experiment), &h)
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Report> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        serde_json::from_str(&s).map_err(|e| Error::Format {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The results table, one row per model.
    pub fn table(&self) -> String {
        self.results_table().markdown()
    }

    fn results_table(&self) -> Table {
        let rows = self
            .ordered_models()
            .into_iter()
            .map(|(name, m)| {
                vec![
                    name.clone(),
                    m.spec.clone(),
                    format!("{} / {}", m.test_errors, m.test_examples),
                    format!(
                        "{:.2}",
                        crate::eval::error_percent(m.test_errors, m.test_examples)
                    ),
                    m.params.to_string(),
                    format!("{:.1}", m.train_seconds),
                    format!("{:.1}", m.infer_us_per_example),
                    if m.silent_units.is_empty() {
                        "-".into()
                    } else {
                        m.silent_units
                            .iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(" / ")
                    },
                ]
            })
            .collect();
        Table {
            header: vec![
                "model",
                "architecture",
                "test errors",
                "error %",
                "params",
                "train s",
                "infer µs/example (batch 1)",
                "silent ReLU units per layer",
            ],
            rows,
        }
    }

    /// Models in a reading order: teacher first, then students, then the rest.
    pub fn ordered_models(&self) -> Vec<(&String, &ModelReport)> {
        by_role(&self.models)
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# distill: {} ({} preset)\n\n{}\n",
            self.experiment,
            self.preset,
            self.table()
        );
        s += &format!(
            "\nDistillation: T = {}, alpha = {}. Dataset {}: {} training, {} validation, {} test examples, {}x{} images, {} classes.\n",
            self.temperature,
            self.alpha,
            self.dataset.name,
            self.dataset.train_size,
            self.dataset.validation_size,
            self.dataset.test_size,
            self.dataset.image[0],
            self.dataset.image[1],
            self.dataset.classes
        );
        s += "\n## Test errors per true class\n\n| model |";
        let classes = self.dataset.classes;
        for c in 0..classes {
            s += &format!(" {c} |");
        }
        s += "\n| --- |";
        s += &" ---: |".repeat(classes);
        s += "\n";
        for (name, m) in self.ordered_models() {
            s += &format!("| {name} |");
            for e in &m.class_errors {
                s += &format!(" {e} |");
            }
            s += "\n";
        }
        s += &format!(
            "\n## Run\n\n- seed: {}\n- backend: {}\n- hardware: {}\n- commit: {}\n- versions: {}\n- os: {}\n- total time: {:.1} s\n",
            self.seed,
            self.backend,
            self.environment.hardware,
            self.git_commit,
            self.environment
                .versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.environment.os,
            self.total_seconds
        );
        if let Some(b) = &self.bias_adjust {
            s += &format!(
                "\nBias adjustment: classes {:?} raised by {:.2} ({}); validation errors {} -> {}.\n",
                b.classes, b.shift, b.method, b.validation_errors_before, b.validation_errors_after
            );
        }
        if !self.findings.is_empty() {
            s += "\n## Findings\n\n";
            for (k, v) in &self.findings {
                s += &format!("- {k}: {v:.4}\n");
            }
        }
        if let Some(dk) = &self.dark_knowledge {
            s += "\n## Dark knowledge\n\n";
            for l in dk.summary() {
                s += &format!("- {l}\n");
            }
            s += "\n";
            for chart in dk.charts.iter().filter(|c| c.ends_with(".png")) {
                s += &format!("![{chart}]({chart})\n\n");
            }
        }
        if !self.notes.is_empty() {
            s += "\n## Notes\n\n";
            for n in &self.notes {
                s += &format!("- {n}\n");
            }
        }
        s
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

    #[test]
    fn silent_unit_warnings_name_layers_with_a_tenth_or_more_silent() {
        let report = |spec: &str, silent_units: Vec<usize>| ModelReport {
            spec: spec.into(),
            test_errors: 0,
            test_examples: 1,
            class_errors: vec![0],
            class_examples: vec![1],
            params: 1,
            train_seconds: 0.0,
            infer_us_per_example: 0.0,
            test_nll: 0.0,
            validation_errors: None,
            confusion: vec![vec![1]],
            dir: String::new(),
            silent_units,
        };
        let w = report("mlp:800,800", vec![440, 79]).silent_unit_warnings("distilled");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("distilled: 440 of the 800 ReLU units of hidden layer 1"),
            "{w:?}"
        );
        assert_eq!(
            report("mlp:800,800", vec![0, 80])
                .silent_unit_warnings("s")
                .len(),
            1
        );
        assert!(
            report("mlp:800,800", vec![79, 0])
                .silent_unit_warnings("s")
                .is_empty()
        );
        assert!(
            report("ensemble of 2 x mlp:8", vec![])
                .silent_unit_warnings("e")
                .is_empty()
        );
    }
}
