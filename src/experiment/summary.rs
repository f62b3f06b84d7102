//! Results over several seeds: reads the `report.json` of runs of one experiment that differ
//! only in their seed, and gives each model's test errors (per seed, mean, spread and per class)
//! and each recipe finding as a mean, as `summary.json`, `summary.md` and a chart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::seeds_headline::SeedsHeadline;
use crate::error::{Error, Result};
use crate::eval::error_percent;
use crate::fsutil::write_atomic;
use crate::report::plot::{GroupedChart, GroupedSeries, grouped_chart};
use crate::report::{Report, Table, html_escape, html_figure, html_page};

/// The losses experiment's rows: a label and the model name after the student's prefix.
const LOSS_ROWS: [(&str, &str); 6] = [
    ("alone (hard labels)", "student"),
    ("kd", "distilled"),
    ("dkd", "distilled_dkd"),
    ("dist", "distilled_dist"),
    ("kd, standardized", "distilled_kd_ls"),
    ("dkd, standardized", "distilled_dkd_ls"),
];

/// The losses experiment's students: a label and the prefix of their model names.
const LOSS_STUDENTS: [(&str, &str); 2] = [("MLP student", ""), ("CNN student", "cnn_")];

/// A quantity measured once per seed, with its mean and spread.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// One value per run, in the order the runs were given.
    pub values: Vec<f64>,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (0 for a single run).
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stat {
    /// Summarizes `values` (which must not be empty).
    pub fn new(values: Vec<f64>) -> Stat {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Stat {
            values,
            mean,
            sd,
            min,
            max,
        }
    }

    /// The values as `a / b / c`, with `digits` decimals.
    fn per_seed(&self, digits: usize) -> String {
        let vals: Vec<String> = self
            .values
            .iter()
            .map(|v| format!("{v:.digits$}"))
            .collect();
        vals.join(" / ")
    }

    /// `mean ± sd` with `digits` decimals.
    fn mean_sd(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.sd)
    }
}

/// One model role over the runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSummary {
    /// Architecture spec (of the first run).
    pub spec: String,
    /// Weights and biases.
    pub params: usize,
    /// Test errors per run.
    pub test_errors: Stat,
    /// Test examples per run (the same in every run).
    pub test_examples: usize,
    /// Mean test error % per true class over the runs.
    pub class_error_percent: Vec<f64>,
    /// Training seconds per run (0 where a model was reused).
    pub train_seconds: Stat,
    /// Batch-1 inference microseconds per example, per run.
    pub infer_us_per_example: Stat,
    /// Batched inference microseconds per example, per run (see
    /// [`ModelReport::batched_us_per_example`](crate::eval::ModelReport)).
    #[serde(default)]
    pub batched_us_per_example: Stat,
}

/// An experiment's results over several seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Experiment name (the same in every run).
    pub experiment: String,
    /// Preset name (the same in every run).
    pub preset: String,
    /// Seed of each run.
    pub seeds: Vec<u64>,
    /// Run directories, in order.
    pub runs: Vec<String>,
    /// Git commit of each run.
    pub git_commits: Vec<String>,
    /// Hardware of the first run.
    pub hardware: String,
    /// Backend of the first run.
    pub backend: String,
    /// Per model role.
    pub models: BTreeMap<String, ModelSummary>,
    /// Each recipe finding (present in every run) over the runs.
    pub findings: BTreeMap<String, Stat>,
    /// Bias shift chosen in each run, where the recipe adjusts biases.
    pub bias_shift: Option<Stat>,
    /// The takeaway over the seeds; `None` without a student alone and a distilled student.
    #[serde(default)]
    pub headline: Option<SeedsHeadline>,
}

/// Reads `report.json` from each run directory and summarizes them. The runs must be of the
/// same experiment and preset, with distinct seeds, the same model roles and the same test set
/// size; otherwise the mismatch is named.
pub fn summarize(runs: &[PathBuf]) -> Result<Summary> {
    if runs.is_empty() {
        return Err(Error::config("give at least one run directory"));
    }
    let reports = runs
        .iter()
        .map(|d| read_report(d))
        .collect::<Result<Vec<_>>>()?;
    let first = &reports[0];
    let roles: Vec<&String> = first.models.keys().collect();
    for (r, dir) in reports.iter().zip(runs).skip(1) {
        check_same_experiment(first, r, &runs[0], dir)?;
    }
    let seeds: Vec<u64> = reports.iter().map(|r| r.seed).collect();
    for (i, s) in seeds.iter().enumerate() {
        if seeds[..i].contains(s) {
            return Err(Error::Mismatch(format!(
                "seed {s} appears twice ({}); give each seed once",
                runs[i].display()
            )));
        }
    }
    let stat = |f: &dyn Fn(&Report) -> f64| Stat::new(reports.iter().map(f).collect());
    let models = roles
        .iter()
        .map(|&name| (name.clone(), model_summary(&reports, name)))
        .collect();
    let findings = first
        .findings
        .keys()
        .filter(|k| reports.iter().all(|r| r.findings.contains_key(*k)))
        .map(|k| (k.clone(), stat(&|r| r.findings[k])))
        .collect();
    let bias_shift = reports
        .iter()
        .map(|r| r.bias_adjust.as_ref().map(|b| f64::from(b.shift)))
        .collect::<Option<Vec<f64>>>()
        .map(Stat::new);
    let mut summary = Summary {
        experiment: first.experiment.clone(),
        preset: first.preset.clone(),
        seeds,
        runs: runs.iter().map(|d| d.display().to_string()).collect(),
        git_commits: reports.iter().map(|r| r.git_commit.clone()).collect(),
        hardware: first.environment.hardware.clone(),
        backend: first.backend.clone(),
        models,
        findings,
        bias_shift,
        headline: None,
    };
    summary.headline = SeedsHeadline::of(&summary);
    Ok(summary)
}

/// The checked `report.json` of the run directory `dir`.
fn read_report(dir: &Path) -> Result<Report> {
    let path = dir.join("report.json");
    if !path.is_file() {
        return Err(Error::config(format!(
            "{} has no report.json; give directories written by `distill reproduce`",
            dir.display()
        )));
    }
    let report = Report::read(&path)?;
    check_report(&report, &path)?;
    Ok(report)
}

/// Refuses the run `r` (in `dir`) unless it is of the experiment, preset, models and test set
/// size of the `first` run (in `first_dir`).
fn check_same_experiment(first: &Report, r: &Report, first_dir: &Path, dir: &Path) -> Result<()> {
    let differs = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        Error::Mismatch(format!(
            "{} has {what} {b:?} but {} has {a:?}; summarize runs of one experiment only",
            dir.display(),
            first_dir.display()
        ))
    };
    if r.experiment != first.experiment {
        return Err(differs("experiment", &first.experiment, &r.experiment));
    }
    if r.preset != first.preset {
        return Err(differs("preset", &first.preset, &r.preset));
    }
    let roles: Vec<&String> = first.models.keys().collect();
    let these: Vec<&String> = r.models.keys().collect();
    if these != roles {
        return Err(differs("models", &roles, &these));
    }
    for (name, m) in &r.models {
        let f = &first.models[name];
        if m.test_examples != f.test_examples || m.class_errors.len() != f.class_errors.len() {
            return Err(differs(
                &format!("a {name} tested on"),
                &(f.test_examples, f.class_errors.len()),
                &(m.test_examples, m.class_errors.len()),
            ));
        }
    }
    Ok(())
}

/// The model `name` over the runs of `reports`.
fn model_summary(reports: &[Report], name: &str) -> ModelSummary {
    let stat = |f: &dyn Fn(&Report) -> f64| Stat::new(reports.iter().map(f).collect());
    let f = &reports[0].models[name];
    let classes = f.class_errors.len();
    let class_error_percent = (0..classes)
        .map(|c| {
            reports
                .iter()
                .map(|r| {
                    let m = &r.models[name];
                    error_percent(m.class_errors[c], m.class_examples[c])
                })
                .sum::<f64>()
                / reports.len() as f64
        })
        .collect();
    ModelSummary {
        spec: f.spec.clone(),
        params: f.params,
        test_errors: stat(&|r| r.models[name].test_errors as f64),
        test_examples: f.test_examples,
        class_error_percent,
        train_seconds: stat(&|r| r.models[name].train_seconds),
        infer_us_per_example: stat(&|r| r.models[name].infer_us_per_example),
        batched_us_per_example: stat(&|r| r.models[name].batched_us_per_example),
    }
}

/// Refuses a report whose per-model arrays do not fit its dataset (a hand-edited or foreign
/// `report.json`), naming the file, before anything indexes into them.
fn check_report(r: &Report, path: &Path) -> Result<()> {
    let classes = r.dataset.classes;
    for (name, m) in &r.models {
        let bad = |what: String| Error::Format {
            what: path.display().to_string(),
            reason: format!("model {name}: {what}"),
        };
        if m.class_errors.len() != classes || m.class_examples.len() != classes {
            return Err(bad(format!(
                "{} class errors and {} class examples for {classes} classes",
                m.class_errors.len(),
                m.class_examples.len()
            )));
        }
        if m.class_errors
            .iter()
            .zip(&m.class_examples)
            .any(|(e, n)| e > n)
        {
            return Err(bad("more errors than examples in a class".into()));
        }
        if m.class_examples.iter().sum::<usize>() != m.test_examples {
            return Err(bad(format!(
                "class examples add up to {}, not the {} test examples",
                m.class_examples.iter().sum::<usize>(),
                m.test_examples
            )));
        }
    }
    Ok(())
}

impl Summary {
    /// `EXPERIMENT (PRESET preset), seeds 1, 2, 3`.
    fn title(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        format!(
            "{} ({} preset), seeds {}",
            self.experiment,
            self.preset,
            seeds.join(", ")
        )
    }

    /// Model roles in the order reports use.
    pub fn ordered_models(&self) -> Vec<(&String, &ModelSummary)> {
        crate::report::by_role(&self.models)
    }

    /// One row per model: test errors per seed, mean ± sd, error %, params and times.
    pub fn table(&self) -> Table {
        let rows = self
            .ordered_models()
            .into_iter()
            .map(|(name, m)| {
                vec![
                    name.clone(),
                    m.spec.clone(),
                    m.test_errors.per_seed(0),
                    m.test_errors.mean_sd(1),
                    format!(
                        "{:.2}",
                        100.0 * m.test_errors.mean / m.test_examples.max(1) as f64
                    ),
                    m.params.to_string(),
                    format!("{:.0}", m.train_seconds.mean),
                    format!("{:.0}", m.infer_us_per_example.mean),
                    format!("{:.1}", m.batched_us_per_example.mean),
                ]
            })
            .collect();
        Table {
            header: vec![
                "model",
                "architecture",
                "test errors per seed",
                "mean ± sd",
                "mean error %",
                "params",
                "mean train s",
                "mean infer µs (batch 1)",
                "mean infer µs (batched)",
            ],
            rows,
        }
    }

    /// The findings (and the bias shift) as `name | per seed | mean ± sd` rows.
    pub fn findings_table(&self) -> Table {
        // Findings are fractions and percentages: more decimals than error counts.
        let mut rows: Vec<Vec<String>> = self
            .findings
            .iter()
            .map(|(k, s)| vec![k.clone(), s.per_seed(3), s.mean_sd(3)])
            .collect();
        if let Some(b) = &self.bias_shift {
            rows.push(vec!["bias_shift".into(), b.per_seed(1), b.mean_sd(2)]);
        }
        Table {
            header: vec!["finding", "per seed", "mean ± sd"],
            rows,
        }
    }

    /// For the losses experiment, one row per loss and, per student, its test errors per seed
    /// and their mean ± sd; `None` for the other experiments.
    pub fn by_loss(&self) -> Option<Table> {
        if self.experiment != "losses" {
            return None;
        }
        let rows = LOSS_ROWS
            .iter()
            .map(|(label, name)| {
                let mut row = vec![label.to_string()];
                for (_, prefix) in LOSS_STUDENTS {
                    match self.models.get(&format!("{prefix}{name}")) {
                        Some(m) => {
                            row.extend([m.test_errors.per_seed(0), m.test_errors.mean_sd(1)])
                        }
                        None => row.extend(["-".to_string(), "-".to_string()]),
                    }
                }
                row
            })
            .collect();
        Some(Table {
            header: vec![
                "loss",
                "MLP student, per seed",
                "mean ± sd",
                "CNN student, per seed",
                "mean ± sd",
            ],
            rows,
        })
    }

    /// The losses experiment's chart: test error % per loss, one bar per student, the teacher
    /// as a line.
    pub fn loss_chart(&self) -> Option<GroupedChart> {
        self.by_loss()?;
        let percent = |m: &ModelSummary| -> Vec<f64> {
            let n = m.test_examples;
            m.test_errors
                .values
                .iter()
                .map(|&e| error_percent(e as usize, n))
                .collect()
        };
        let series = LOSS_STUDENTS
            .iter()
            .map(|(label, prefix)| GroupedSeries {
                name: match self.models.get(&format!("{prefix}student")) {
                    Some(m) => format!("{label} ({})", m.spec),
                    None => label.to_string(),
                },
                values: LOSS_ROWS
                    .iter()
                    .map(|(_, name)| self.models.get(&format!("{prefix}{name}")).map(percent))
                    .map(Option::unwrap_or_default)
                    .collect(),
            })
            .collect();
        let reference = self.models.get("teacher").map(|t| {
            let p = percent(t);
            let mean = p.iter().sum::<f64>() / p.len().max(1) as f64;
            (format!("teacher ({})", t.spec), mean)
        });
        Some(GroupedChart {
            title: self.title(),
            y_label: "test error % (bar: mean; dots: one per seed)".into(),
            groups: LOSS_ROWS.iter().map(|(l, _)| l.to_string()).collect(),
            series,
            reference,
            first_colour: 0,
        })
    }

    /// The headline as a bold paragraph, or nothing.
    fn headline_markdown(&self) -> String {
        self.headline
            .as_ref()
            .map(|h| format!("**{}**\n\n", h.text))
            .unwrap_or_default()
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# distill: {}\n\n{}{}\n",
            self.title(),
            self.headline_markdown(),
            self.table().markdown()
        );
        if let Some(t) = self.by_loss() {
            s += &format!(
                "\n## Test errors by loss\n\n{}\n![by loss](losses.png)\n",
                t.markdown()
            );
        }
        if !self.findings.is_empty() || self.bias_shift.is_some() {
            s += &format!("\n{}", self.findings_table().markdown());
        }
        let mut commits: Vec<&str> = Vec::new();
        for c in &self.git_commits {
            if !commits.contains(&c.as_str()) {
                commits.push(c);
            }
        }
        s += &format!(
            "\nRuns: {}. Backend {}; {}; commit {}.\n",
            self.runs.join(", "),
            self.backend,
            self.hardware,
            commits.join(", ")
        );
        s
    }

    /// Writes `summary.json`, `summary.md`, `summary.png`, `summary.svg` and a self-contained
    /// `summary.html` (tables and the chart inlined) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        crate::fsutil::write_json(&dir.join("summary.json"), self)?;
        write_atomic(&dir.join("summary.md"), self.markdown().as_bytes())?;
        let chart = self.chart();
        let by_loss = self.loss_chart();
        for ext in ["png", "svg"] {
            crate::report::plot::summary_chart(&dir.join(format!("summary.{ext}")), &chart)?;
            if let Some(c) = &by_loss {
                grouped_chart(&dir.join(format!("losses.{ext}")), c)?;
            }
        }
        write_atomic(&dir.join("summary.html"), self.html(dir).as_bytes())
    }

    /// The summary as one HTML page with the chart `dir/summary.svg` inlined.
    fn html(&self, dir: &Path) -> String {
        let title = format!("distill: {}", self.title());
        let mut body = String::new();
        if let Some(h) = &self.headline {
            body += &format!(
                "<p class=\"headline\" id=\"headline\">{}</p>\n",
                html_escape(&h.text)
            );
        }
        body += &format!("<h1>{}</h1>\n", html_escape(&title));
        body += &self.table().html();
        if !self.findings.is_empty() || self.bias_shift.is_some() {
            body += &self.findings_table().html();
        }
        body += &html_figure(dir, "summary.svg");
        if let Some(t) = self.by_loss() {
            body += &format!("<h2>Test errors by loss</h2>\n{}", t.html());
            body += &html_figure(dir, "losses.svg");
        }
        body += &format!(
            "<p>Runs: {}. Backend {}; {}.</p>\n",
            html_escape(&self.runs.join(", ")),
            html_escape(&self.backend),
            html_escape(&self.hardware)
        );
        html_page(&title, &body)
    }

    /// The chart's inputs: test error % per model and seed, and mean error % per class.
    pub fn chart(&self) -> crate::report::plot::SummaryChart {
        let models = self
            .ordered_models()
            .into_iter()
            .map(|(name, m)| crate::report::plot::SummaryModel {
                name: name.clone(),
                error_percent: m
                    .test_errors
                    .values
                    .iter()
                    .map(|&e| error_percent(e as usize, m.test_examples))
                    .collect(),
                class_error_percent: m.class_error_percent.clone(),
            })
            .collect();
        crate::report::plot::SummaryChart {
            title: self.title(),
            models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_mean_and_sample_sd() {
        let s = Stat::new(vec![100.0, 104.0, 100.0]);
        assert!((s.mean - 101.333_333).abs() < 1e-5);
        assert!((s.sd - 2.309_401).abs() < 1e-5);
        assert_eq!((s.min, s.max), (100.0, 104.0));
        assert_eq!(Stat::new(vec![7.0]).sd, 0.0);
    }
}
