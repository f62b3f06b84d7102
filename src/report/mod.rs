//! Stage 6, report: what a run measured, with the context needed to trust and reproduce it
//! (hardware, backend, seed, commit, versions), as `report.json`, `report.md` and a
//! self-contained `report.html`, and the charts beside them.
//!
//! Owns: every file a person reads after a run, and the drawing of charts.
//! May use: every stage below it (`data` to `eval`) and the foundation modules.

mod charts;
mod environment;
pub mod plot;
mod table;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::eval::{Agreement, BiasAdjustReport, ModelReport, error_percent};
use crate::fsutil::write_atomic;

pub use charts::{ChartModel, write_charts};
pub use environment::Environment;
pub use table::{Table, by_role, html_escape, html_figure, html_page};

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
    /// Whether the teacher made fewer validation errors than the student trained alone (a
    /// teacher that does not has little to teach); `None` without a validation split.
    #[serde(default)]
    pub teacher_better_than_student: Option<bool>,
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
    pub agreement_with_teacher: BTreeMap<String, Agreement>,
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
        let mut h = format!("<h1>{}</h1>\n", esc(&self.title()));
        h += &self.results_table().html();
        h += &format!(
            "<p>T = {}, alpha = {}; seed {}; backend {}, {} threads; {}; commit {}.</p>\n",
            self.temperature,
            self.alpha,
            self.seed,
            esc(&self.backend),
            self.environment.threads,
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
        html_page(&self.title(), &h)
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
                    format!("{:.2}", error_percent(m.test_errors, m.test_examples)),
                    m.params.to_string(),
                    format!("{:.1}", m.train_seconds),
                    format!("{:.1}", m.infer_us_per_example),
                    format!("{:.1}", m.batched_us_per_example),
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
                "infer µs/example (batched)",
                "silent ReLU units per layer",
            ],
            rows,
        }
    }

    /// Models in a reading order: teacher first, then students, then the rest.
    pub fn ordered_models(&self) -> Vec<(&String, &ModelReport)> {
        by_role(&self.models)
    }

    /// The report's title: the data it ran on and the recipe. The main experiment is named
    /// after its data alone, since its recipe is the paper's comparison on any dataset.
    pub fn title(&self) -> String {
        let data = &self.dataset.name;
        match self.experiment.as_str() {
            "mnist" => format!("distill: {data} ({} preset)", self.preset),
            e => format!("distill: {e} on {data} ({} preset)", self.preset),
        }
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n{}\n", self.title(), self.table());
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
            "\n## Run\n\n- seed: {}\n- backend: {}, {} threads\n- hardware: {}\n- commit: {}\n- versions: {}\n- os: {}\n- total time: {:.1} s\n",
            self.seed,
            self.backend,
            self.environment.threads,
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
