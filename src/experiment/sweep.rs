//! Temperature sweeps: one distilled student per (student, alpha, T) from one cached teacher,
//! charted against T, with the paper's two findings on temperature checked on the results.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::student::{Distillation, StudentRun, distill_student};
use crate::compute::compute_device;
use crate::data::Splits;
use crate::distill::{DistillConfig, DistillParams, StudentInputs};
use crate::error::{Error, Result, Setting};
use crate::eval::evaluate;
use crate::fsutil::write_atomic;
use crate::model::{Classifier, OnnxOptions, OpenOptions};
use crate::report::{Environment, plot};
use crate::train::{RoleConfig, RoleParams, RunOutput, TrainParams};

/// Options of `distill sweep`: one distilled student per (student, alpha, T) from one teacher.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Trained teacher (model or ensemble directory, or ONNX file); its soft targets are
    /// cached per T.
    pub teacher: PathBuf,
    /// How an ONNX teacher runs.
    pub onnx: OnnxOptions,
    /// Student architectures.
    pub students: Vec<String>,
    /// Temperatures.
    pub temperatures: Vec<f32>,
    /// Soft-target weights.
    pub alphas: Vec<f32>,
    /// Training of every student (epochs, rate, seed...).
    pub train: TrainParams,
    /// Data directory and sizes.
    pub data_dir: PathBuf,
    /// Validation examples held out of the training set (`None`: the data's default).
    pub validation_size: Option<usize>,
    /// Training examples used; `None` = all.
    pub train_size: Option<usize>,
    /// Test examples; `None` = all.
    pub test_size: Option<usize>,
    /// Output directory.
    pub out: PathBuf,
    /// Draw progress bars.
    pub progress: bool,
}

/// One trained setting of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepPoint {
    /// Student architecture.
    pub student: String,
    /// Soft-target weight.
    pub alpha: f32,
    /// Temperature.
    pub temperature: f32,
    /// Test errors.
    pub test_errors: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Validation errors after the last epoch (what "best" is judged on).
    pub validation_errors: usize,
    /// Training seconds.
    pub train_seconds: f64,
}

/// What a sweep measured and what it says about the paper's findings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepReport {
    /// Teacher directory.
    pub teacher: String,
    /// Every setting.
    pub points: Vec<SweepPoint>,
    /// One sentence per student and alpha on the paper's findings.
    pub findings: Vec<String>,
    /// The training settings of every student.
    pub train: TrainParams,
    /// Hardware, backend, commit.
    pub environment: Environment,
}

/// Distills one student per setting and charts test error against T.
pub fn sweep(opts: &SweepOptions) -> Result<SweepReport> {
    let (roles, configs) = sweep_settings(opts)?;
    let (device, backend) = compute_device();
    let splits = Splits::load(
        &opts.data_dir,
        &crate::data::TableOptions::default(),
        opts.validation_size,
        opts.train_size,
        opts.test_size,
    )?;
    let how = OpenOptions {
        shape: Some(splits.dataset.shape),
        onnx: opts.onnx.clone(),
    };
    let teacher = Classifier::load_teacher(&opts.teacher, &device, &how)?;
    teacher.expect_classes(splits.dataset.classes)?;
    let _lock = crate::fsutil::RunLock::acquire(&opts.out)?;
    let cache = opts.out.join("cache");
    let mut points = Vec::new();
    for role in &roles {
        for cfg in &configs {
            let s = role.train.settings();
            let distillation = Distillation {
                teacher: &teacher,
                teacher_dir: &opts.teacher,
                loss: Arc::new(*cfg),
                inputs: StudentInputs::new(s.jitter, s.mixup, 0, splits.dataset.shape, s.seed)?,
                transfer: &splits,
                cache_dir: &cache,
                device: &device,
                announce: None,
            };
            points.push(sweep_point(opts, distillation, role, cfg)?);
        }
    }
    let choosing: Vec<ValidationPoint> = points.iter().map(SweepPoint::for_choosing).collect();
    let findings = sweep_findings(&choosing);
    let series = sweep_series(&points);
    for ext in ["png", "svg"] {
        plot::sweep_chart(
            &opts.out.join(format!("sweep.{ext}")),
            "distilled students: test error vs temperature",
            &series,
        )?;
    }
    let report = SweepReport {
        teacher: opts.teacher.display().to_string(),
        points,
        findings,
        train: opts.train.clone(),
        environment: Environment::detect(backend),
    };
    crate::fsutil::write_json(&opts.out.join("sweep.json"), &report)?;
    write_atomic(
        &opts.out.join("sweep.md"),
        sweep_markdown(&report).as_bytes(),
    )?;
    write_atomic(
        &opts.out.join("report.html"),
        sweep_html(&report, &opts.out).as_bytes(),
    )?;
    Ok(report)
}

/// The sweep's students and (alpha, T) settings, checked before anything loads.
fn sweep_settings(opts: &SweepOptions) -> Result<(Vec<RoleConfig>, Vec<DistillConfig>)> {
    for &t in &opts.temperatures {
        crate::distill::check_temperature(t)?;
    }
    if opts.temperatures.is_empty() || opts.alphas.is_empty() || opts.students.is_empty() {
        return Err(Error::config(
            "a sweep needs at least one student, temperature and alpha",
        ));
    }
    if opts.validation_size == Some(0) {
        return Err(Error::config(format!(
            "a sweep judges its settings on validation errors: give {} above 0",
            Setting::ValidationSize
        )));
    }
    let roles: Vec<RoleConfig> = opts
        .students
        .iter()
        .map(|s| {
            RoleParams {
                spec: s.clone(),
                input_dropout: 0.0,
                hidden_dropout: 0.0,
                train: opts.train.clone(),
            }
            .check()
        })
        .collect::<Result<_>>()?;
    let configs: Vec<DistillConfig> = opts
        .alphas
        .iter()
        .flat_map(|&alpha| {
            opts.temperatures
                .iter()
                .map(move |&temperature| DistillParams { temperature, alpha })
        })
        .map(DistillParams::check)
        .collect::<Result<_>>()?;
    Ok((roles, configs))
}

/// Distills the student `role` at the setting `cfg` into a directory named after both, and
/// measures it.
fn sweep_point(
    opts: &SweepOptions,
    distillation: Distillation<'_>,
    role: &RoleConfig,
    cfg: &DistillConfig,
) -> Result<SweepPoint> {
    let name = format!(
        "{}-a{}-T{}",
        role.spec.to_string().replace([':', ','], "_"),
        cfg.alpha(),
        cfg.temperature()
    );
    let student = StudentRun {
        role,
        output: RunOutput::new(&opts.out.join(&name), &name, opts.progress),
    };
    let splits = distillation.transfer;
    let device = distillation.device;
    let (d, _) = distill_student(distillation, student)?;
    let t = d.trained;
    let e = evaluate(&t.network, &splits.test, splits.dataset.classes, device)?;
    let point = SweepPoint {
        student: role.spec.to_string(),
        alpha: cfg.alpha(),
        temperature: cfg.temperature(),
        test_errors: e.errors,
        test_examples: e.examples,
        validation_errors: t.history.last().map_or(0, |m| m.validation_errors),
        train_seconds: t.seconds,
    };
    if opts.progress {
        eprintln!(
            "{name}: {} test errors, {} validation errors",
            e.errors, point.validation_errors
        );
    }
    Ok(point)
}

/// Test error against temperature, one series per (student, alpha).
fn sweep_series(points: &[SweepPoint]) -> Vec<plot::SweepSeries> {
    group_by_setting(points, |p| (p.student.clone(), p.alpha.to_string()))
        .into_iter()
        .map(|((s, a), mut ps)| {
            ps.sort_by(|a, b| a.temperature.total_cmp(&b.temperature));
            let pts = ps
                .iter()
                .map(|p| {
                    (
                        p.temperature as f64,
                        crate::eval::error_percent(p.test_errors, p.test_examples),
                    )
                })
                .collect();
            (format!("{s}, alpha {a}"), pts)
        })
        .collect()
}

/// Points grouped by (student, alpha), in first-seen order.
type Groups<'a, P> = Vec<((String, String), Vec<&'a P>)>;

fn group_by_setting<'a, P>(points: &'a [P], key: impl Fn(&P) -> (String, String)) -> Groups<'a, P> {
    let mut groups: Groups<'a, P> = Vec::new();
    for p in points {
        let k = key(p);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(p),
            None => groups.push((k, vec![p])),
        }
    }
    groups
}

/// What a chooser may see of a sweep point: its setting and its validation errors. Test errors
/// are left out on purpose, so no finding or choice can read the test set.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationPoint {
    /// Student architecture.
    pub student: String,
    /// Soft-target weight.
    pub alpha: f32,
    /// Temperature.
    pub temperature: f32,
    /// Errors on the validation split.
    pub validation_errors: usize,
}

impl SweepPoint {
    /// The point as a chooser sees it: without its test errors.
    pub fn for_choosing(&self) -> ValidationPoint {
        ValidationPoint {
            student: self.student.clone(),
            alpha: self.alpha,
            temperature: self.temperature,
            validation_errors: self.validation_errors,
        }
    }
}

/// Checks the paper's two findings on the measured points, judged on validation errors only:
/// wide students (300+ units per layer) do about equally well for all T of 8 and above; narrow
/// ones (30 units) do best for T between 2.5 and 4. Ties for the best T go to the lower T.
pub fn sweep_findings(points: &[ValidationPoint]) -> Vec<String> {
    let mut out = Vec::new();
    for ((student, alpha), ps) in
        group_by_setting(points, |p| (p.student.clone(), p.alpha.to_string()))
    {
        let width = student
            .trim_start_matches("mlp:")
            .split(',')
            .filter_map(|w| w.parse::<usize>().ok())
            .min()
            .unwrap_or(0);
        let best = ps
            .iter()
            .min_by(|a, b| {
                (a.validation_errors, a.temperature)
                    .partial_cmp(&(b.validation_errors, b.temperature))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("non-empty group");
        let mut s = format!(
            "{student}, alpha {alpha}: best T by validation errors is {} ({} validation errors).",
            best.temperature, best.validation_errors
        );
        if width >= 300 {
            let high: Vec<f64> = ps
                .iter()
                .filter(|p| p.temperature >= 8.0)
                .map(|p| p.validation_errors as f64)
                .collect();
            if high.len() >= 2 {
                let (lo, hi) = high
                    .iter()
                    .fold((f64::MAX, 0f64), |(a, b), &e| (a.min(e), b.max(e)));
                let mean = high.iter().sum::<f64>() / high.len() as f64;
                let similar = (hi - lo) <= 0.15 * mean;
                s += &format!(
                    " Paper: for 300+ units all T above 8 are similar. Here T >= 8 gives {lo}..{hi} validation errors (spread {:.0}% of the mean): {}.",
                    100.0 * (hi - lo) / mean.max(1.0),
                    if similar { "agrees" } else { "does not agree" }
                );
            }
        } else if width <= 50 {
            let agrees = (2.5..=4.0).contains(&best.temperature);
            s += &format!(
                " Paper: for 30 units T between 2.5 and 4 is best. Here the best T is {}: {}.",
                best.temperature,
                if agrees { "agrees" } else { "does not agree" }
            );
        }
        out.push(s);
    }
    out
}

fn points_table(r: &SweepReport) -> crate::report::Table {
    crate::report::Table {
        header: vec![
            "student",
            "alpha",
            "T",
            "test errors",
            "validation errors",
            "train s",
        ],
        rows: r
            .points
            .iter()
            .map(|p| {
                vec![
                    p.student.clone(),
                    p.alpha.to_string(),
                    p.temperature.to_string(),
                    format!("{} / {}", p.test_errors, p.test_examples),
                    p.validation_errors.to_string(),
                    format!("{:.1}", p.train_seconds),
                ]
            })
            .collect(),
    }
}

fn sweep_html(r: &SweepReport, dir: &std::path::Path) -> String {
    use crate::report::{html_escape as esc, html_figure, html_page};
    let mut h = format!(
        "<h1>distill sweep</h1>\n<p>Teacher {}.</p>\n",
        esc(&r.teacher)
    );
    h += &points_table(r).html();
    h += "<ul>";
    for f in &r.findings {
        h += &format!("<li>{}</li>", esc(f));
    }
    h += "</ul>\n";
    h += &html_figure(dir, "sweep.svg");
    h += &format!(
        "<p>{}; backend {}; commit {}.</p>\n",
        esc(&r.environment.hardware),
        esc(&r.environment.backend),
        esc(&r.environment.git_commit)
    );
    html_page("distill sweep", &h)
}

fn sweep_markdown(r: &SweepReport) -> String {
    let mut s = format!("# distill sweep\n\nTeacher: `{}`.\n\n", r.teacher);
    s += &points_table(r).markdown();
    s += "\n## Findings\n\n";
    for f in &r.findings {
        s += &format!("- {f}\n");
    }
    s += &format!(
        "\n![sweep](sweep.png)\n\nRun on {}, backend {}, commit {}.\n",
        r.environment.hardware, r.environment.backend, r.environment.git_commit
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(student: &str, t: f32, val: usize) -> ValidationPoint {
        ValidationPoint {
            student: student.into(),
            alpha: 0.9,
            temperature: t,
            validation_errors: val,
        }
    }

    #[test]
    fn findings_judge_the_papers_claims_on_validation_errors() {
        let pts = vec![
            p("mlp:800,800", 1.0, 90),
            p("mlp:800,800", 8.0, 60),
            p("mlp:800,800", 20.0, 62),
            p("mlp:30,30", 1.0, 300),
            p("mlp:30,30", 3.0, 200),
            p("mlp:30,30", 20.0, 260),
        ];
        let f = sweep_findings(&pts);
        assert_eq!(f.len(), 2);
        assert!(
            f[0].contains("best T by validation errors is 8") && f[0].contains(": agrees"),
            "{}",
            f[0]
        );
        assert!(f[1].contains("best T is 3: agrees"), "{}", f[1]);
        let f = sweep_findings(&[p("mlp:800,800", 8.0, 60), p("mlp:800,800", 20.0, 90)]);
        assert!(f[0].contains("does not agree"), "{}", f[0]);
    }

    #[test]
    fn choices_follow_validation_where_the_test_set_disagrees() {
        // By test errors T = 20 is best and T >= 8 all alike; by validation T = 3 is best and
        // T = 8 and 20 are far apart. Every finding must follow validation.
        let point = |t: f32, validation_errors: usize, test_errors: usize| SweepPoint {
            student: "mlp:800,800".into(),
            alpha: 0.9,
            temperature: t,
            test_errors,
            test_examples: 10000,
            validation_errors,
            train_seconds: 1.0,
        };
        let points = [
            point(3.0, 50, 140),
            point(8.0, 60, 121),
            point(20.0, 90, 120),
        ];
        let choosing: Vec<ValidationPoint> = points.iter().map(SweepPoint::for_choosing).collect();
        let f = sweep_findings(&choosing);
        assert!(
            f[0].contains("best T by validation errors is 3"),
            "{}",
            f[0]
        );
        assert!(f[0].contains("does not agree"), "{}", f[0]);
        // A tie on validation goes to the lower T, never to the test set.
        let tied = [point(4.0, 55, 130), point(2.0, 55, 150)];
        let choosing: Vec<ValidationPoint> = tied.iter().map(SweepPoint::for_choosing).collect();
        assert!(
            sweep_findings(&choosing)[0].contains("is 2 "),
            "{:?}",
            sweep_findings(&choosing)
        );
    }
}
