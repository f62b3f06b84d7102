//! Stage 7, report: what a run measured, with the context needed to trust and reproduce it
//! (hardware, backend, seed, commit, versions), as `report.json`, `report.md` and a
//! self-contained `report.html`, and the charts beside them.
//!
//! Owns: every file a person reads after a run, and the drawing of charts.
//! May use: every stage below it (`compute` to `eval`) and the foundation modules.

mod changed;
mod charts;
mod distill_choice;
mod environment;
mod headline;
mod markdown;
mod page;
pub mod plot;
mod table;
mod teacher_choice;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::eval::{Agreement, BiasAdjustReport, ModelReport, error_percent};
use crate::fsutil::write_atomic;

pub use changed::{Changed, ChangedImage};
pub use charts::{ChartModel, write_charts};
pub use distill_choice::{DistillChoice, GridPoint};
pub use environment::Environment;
pub use headline::{Headline, OmittedRight};
pub use table::{Table, by_role, html_escape, html_figure, html_page};
pub use teacher_choice::{TeacherCandidate, TeacherChoice};

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
    /// The run's takeaway and the numbers it states ([`Report::with_headline`]); `None` in
    /// reports written before it, or without a student alone and a distilled one.
    #[serde(default)]
    pub headline: Option<Headline>,
    /// The test images whose answer distillation changed, per class.
    #[serde(default)]
    pub changed: Option<Changed>,
    /// For a table: each model's file size and latency, in distill and in onnxruntime.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub size_speed: Vec<SizeSpeed>,
    /// How the teacher was chosen, when the recipe judged candidates on validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_choice: Option<TeacherChoice>,
    /// How T and alpha were chosen, when the recipe trained a student at several settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_choice: Option<DistillChoice>,
}

/// One model's row of the size and speed table: what serving it costs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeSpeed {
    /// Role (`teacher`, `student`, ...).
    pub model: String,
    /// The ONNX file measured (the teacher's own, or the student exported).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Microseconds per row at batch 1 in distill.
    pub distill_batch1_us: f64,
    /// Microseconds per row over the whole test set at once in distill.
    pub distill_batched_us: f64,
    /// Microseconds per row at batch 1 in onnxruntime, where it is installed.
    pub onnxruntime_batch1_us: Option<f64>,
    /// Microseconds per row over the whole test set in onnxruntime, where it is installed.
    pub onnxruntime_batched_us: Option<f64>,
}

impl Report {
    /// The size and speed table, or `None` when the run has none (images).
    pub fn size_speed_table(&self) -> Option<Table> {
        if self.size_speed.is_empty() {
            return None;
        }
        let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let rows = self
            .size_speed
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    format!("{:.1}", r.bytes as f64 / 1024.0),
                    us(Some(r.distill_batch1_us)),
                    us(Some(r.distill_batched_us)),
                    us(r.onnxruntime_batch1_us),
                    us(r.onnxruntime_batched_us),
                ]
            })
            .collect();
        Some(Table {
            header: vec![
                "model",
                "ONNX file (KiB)",
                "distill batch 1 (µs/row)",
                "distill batched (µs/row)",
                "onnxruntime batch 1 (µs/row)",
                "onnxruntime batched (µs/row)",
            ],
            rows,
        })
    }
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
    /// Per chart (file stem), how many values it draws; a chart with none is not drawn.
    #[serde(default)]
    pub chart_values: BTreeMap<String, usize>,
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

    /// This report with its headline computed from its numbers.
    pub fn with_headline(mut self) -> Report {
        self.headline = Headline::of(&self);
        self
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
                // A teacher no better than the student alone on validation is marked where its
                // numbers are read, not only in a note.
                let losing = matches!(name.as_str(), "teacher" | "ensemble")
                    && self.teacher_better_than_student == Some(false);
                vec![
                    match losing {
                        true => format!("{name} (no better than the student alone on validation)"),
                        false => name.clone(),
                    },
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

    /// The recipe in a sentence, and what it chose on validation rather than took as set.
    pub fn recipe_line(&self) -> String {
        let mut chosen = Vec::new();
        // A teacher judged alone was kept, not chosen: said apart, after the choices.
        let mut kept = String::new();
        match &self.teacher_choice {
            Some(c) if c.candidates.len() > 1 => {
                chosen.push(format!("the teacher ({})", c.candidates[c.chosen].name));
            }
            Some(c) => kept = format!(" Judged on validation and kept: {}.", c.candidates[0].name),
            None => {}
        }
        if let Some(c) = &self.distill_choice {
            let p = c.chosen();
            chosen.push(format!("T = {}, alpha = {}", p.temperature, p.alpha));
        }
        let chosen = match chosen.is_empty() {
            true => "nothing".to_string(),
            false => chosen.join("; "),
        };
        // The main experiment is the paper's comparison on any data: its internal name, that of
        // the dataset it was first run on, would name data the run never saw.
        let experiment = match self.experiment.as_str() {
            "mnist" => "main experiment (teacher, student alone, distilled student)".to_string(),
            e => format!("{e} experiment"),
        };
        format!(
            "Recipe: the {experiment}, {} preset, on {}. Chosen on validation: {chosen}.{kept}",
            self.preset, self.dataset.name
        )
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
}
