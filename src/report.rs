//! Reports: what a run measured, with the context needed to trust and reproduce it (hardware,
//! backend, seed, commit, versions), as `report.json` and `report.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

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
}

/// Where and with what a run was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// CPU model and core count, or the GPU.
    pub hardware: String,
    /// Compute backend.
    pub backend: String,
    /// Git commit of the source tree (with `-dirty` if it had uncommitted changes), or "unknown".
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

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown".into(),
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
}

impl Report {
    /// Writes `report.json` and `report.md` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Format {
            what: "report.json".into(),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join("report.json"), json.as_bytes())?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())
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
        let mut s = String::from(
            "| model | architecture | test errors | error % | params | train s | infer µs/example (batch 1) |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (name, m) in self.ordered_models() {
            s += &format!(
                "| {name} | {} | {} / {} | {:.2} | {} | {:.1} | {:.1} |\n",
                m.spec,
                m.test_errors,
                m.test_examples,
                100.0 * m.test_errors as f64 / m.test_examples.max(1) as f64,
                m.params,
                m.train_seconds,
                m.infer_us_per_example
            );
        }
        s
    }

    /// Models in a reading order: teacher first, then students, then the rest.
    pub fn ordered_models(&self) -> Vec<(&String, &ModelReport)> {
        let rank = |k: &str| match k {
            "teacher" | "ensemble" | "single" => 0,
            "student_full" => 1,
            "student" => 2,
            "distilled" => 3,
            _ => 4,
        };
        let mut v: Vec<_> = self.models.iter().collect();
        v.sort_by_key(|(k, _)| (rank(k), (*k).clone()));
        v
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
        if !self.notes.is_empty() {
            s += "\n## Notes\n\n";
            for n in &self.notes {
                s += &format!("- {n}\n");
            }
        }
        s
    }
}
