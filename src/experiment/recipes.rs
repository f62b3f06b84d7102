//! The paper's experiments as recipes: obtain a teacher (train, reuse or take one given),
//! train the student alone and distilled on the transfer set, evaluate, chart and report.
//! Everything here composes the stages below; nothing is computed here that a stage owns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;

use super::losses::LossStudents;
use super::presets::{CheckedRoles, ExperimentKind, FitToData, ReproduceConfig};
use crate::compute::compute_device;
use crate::data::Splits;
use crate::distill::{Objective, StudentInputs, distill_objective};
use crate::error::{Error, Result};
use crate::eval::{ModelReport, adjust_bias, error_percent, evaluate, mean_report, model_report};
use crate::fsutil::{RunLock, write_atomic};
use crate::model::{Classifier, Network, OpenOptions, Predictor, weights_path};
use crate::report::{ChartModel, Environment, Report, write_charts};
use crate::train::{
    CheckedRole, Checkpoints, EpochMetrics, RunOutput, TrainSettings, earlier_training, train_role,
};

/// Options of `distill reproduce`.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// The run's configuration (from a preset, possibly overridden).
    pub config: ReproduceConfig,
    /// Output directory.
    pub out: PathBuf,
    /// Retrain the teacher even if a matching one exists in `out`.
    pub retrain_teacher: bool,
    /// Use this trained teacher (a model or ensemble directory) instead of training one.
    pub teacher: Option<PathBuf>,
    /// Draw progress bars.
    pub progress: bool,
    /// Each model's checkpoints; with `resume`, finished models are kept and the interrupted
    /// one resumes.
    pub checkpoints: Checkpoints,
    /// What to size to the dataset before anything trains (recorded in `config.toml`).
    pub fit: FitToData,
}

impl ReproduceOptions {
    /// How the model in `dir` is written.
    fn output(&self, dir: &Path, label: &str) -> RunOutput {
        RunOutput {
            checkpoints: self.checkpoints,
            ..RunOutput::new(dir, label, self.progress)
        }
    }
}

/// A teacher as an experiment obtained it.
struct TeacherRun {
    model: Classifier,
    dir: PathBuf,
    seconds: f64,
    validation_errors: Option<usize>,
    history: Vec<EpochMetrics>,
    member_reports: Vec<ModelReport>,
}

/// Everything an experiment run shares between its steps.
struct Run<'a> {
    opts: &'a ReproduceOptions,
    splits: Splits,
    device: Device,
    notes: Vec<String>,
}

impl Run<'_> {
    /// How a given teacher is opened: an ONNX file takes the data's image shape.
    fn open_options(&self) -> OpenOptions {
        OpenOptions {
            shape: Some(self.splits.dataset.shape),
            ..OpenOptions::default()
        }
    }

    /// Trains (or reuses, when `dir` holds a model trained with the same config and data) one
    /// network on hard labels with all the training data.
    fn hard_model(
        &mut self,
        role: &CheckedRole,
        dir: &Path,
        label: &str,
    ) -> Result<(Network, f64, Option<usize>, Vec<EpochMetrics>)> {
        let stamp = format!(
            "{}\ndata={}\n",
            toml::to_string(&role.config()).unwrap_or_default(),
            self.splits.train.fingerprint()
        );
        let stamp_path = dir.join("trained-with.txt");
        let reusable = !self.opts.retrain_teacher
            && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
            && weights_path(dir).exists();
        if reusable {
            match Network::load(dir, &self.device) {
                Ok(net) => {
                    let (seconds, val, history) = earlier_training(dir);
                    self.notes.push(format!(
                        "{label} reused from an earlier run with the same config and data \
                         (its training time, {seconds:.1} s, is the one reported)"
                    ));
                    return Ok((net, seconds, val, history));
                }
                Err(e) => self
                    .notes
                    .push(format!("earlier {label} not usable ({e}); retrained")),
            }
        }
        let _ = std::fs::remove_file(&stamp_path);
        let t = train_role(
            role,
            &self.splits,
            &Objective::Hard,
            &self.device,
            &self.opts.output(dir, label),
        )?;
        write_atomic(&stamp_path, stamp.as_bytes())?;
        let val = t.history.last().and_then(EpochMetrics::validation);
        Ok((t.network, t.seconds, val, t.history))
    }

    fn teacher(&mut self, roles: &CheckedRoles) -> Result<TeacherRun> {
        let cfg = &self.opts.config;
        if let Some(dir) = &self.opts.teacher {
            let model = Classifier::load_teacher(dir, &self.device, &self.open_options())?;
            if model.classes() != self.splits.dataset.classes {
                return Err(Error::Mismatch(format!(
                    "the teacher in {} has {} classes but the dataset has {}",
                    dir.display(),
                    model.classes(),
                    self.splits.dataset.classes
                )));
            }
            let (seconds, validation_errors, history) = earlier_training(dir);
            self.notes.push(format!(
                "teacher taken from {} (not retrained; its training time, {seconds:.1} s, is \
                 the one reported)",
                dir.display()
            ));
            return Ok(TeacherRun {
                model,
                dir: dir.clone(),
                seconds,
                validation_errors,
                history,
                member_reports: Vec::new(),
            });
        }
        let out = &self.opts.out;
        if cfg.members <= 1 {
            let dir = out.join("teacher");
            let (net, seconds, validation_errors, history) =
                self.hard_model(&roles.teacher, &dir, "teacher")?;
            return Ok(TeacherRun {
                model: Classifier::Single(net),
                dir,
                seconds,
                validation_errors,
                history,
                member_reports: Vec::new(),
            });
        }
        let mut dirs = Vec::new();
        let mut seconds = 0.0;
        let mut member_reports = Vec::new();
        let mut history = Vec::new();
        for k in 0..cfg.members {
            let mut role = roles.teacher.clone();
            let mut settings = role.train.settings().clone();
            settings.seed = settings.seed.wrapping_add(101 * k as u64);
            role.train = settings.check()?;
            let dir = out.join("members").join(format!("m{}", k + 1));
            let label = format!("member {}", k + 1);
            let (net, secs, val, h) = self.hard_model(&role, &dir, &label)?;
            seconds += secs;
            member_reports.push(model_report(
                &net,
                &dir,
                &self.splits,
                &self.device,
                secs,
                val,
            )?);
            if k == 0 {
                history = h;
            }
            dirs.push(dir);
        }
        let dir = out.join("ensemble");
        let model =
            Classifier::create_ensemble(&dir, &dirs, &self.device, &OpenOptions::default())?;
        // Counted here, as no training run records it: without it the report could not say
        // whether the ensemble beats the student alone.
        let validation_errors = match self.splits.validation.is_empty() {
            true => None,
            false => Some(
                evaluate(
                    &model,
                    &self.splits.validation,
                    self.splits.dataset.classes,
                    &self.device,
                )?
                .errors,
            ),
        };
        Ok(TeacherRun {
            model,
            dir,
            seconds,
            validation_errors,
            history,
            member_reports,
        })
    }
}

/// The name of a control student trained alone on hard labels exactly as the distilled student
/// is trained, after what sets it apart from the student alone; `None` when nothing does.
/// Without it, what the shifted or blended images (or the longer schedule) teach would be
/// credited to the soft targets (paper preset, seed 1: 2-px shifts took the distilled student
/// from 107 to 86 test errors, and the student alone from 158 to 84).
fn control_name(student: &TrainSettings, distilled: &TrainSettings) -> Option<&'static str> {
    if distilled.mixup != student.mixup {
        Some("student_mixup")
    } else if distilled.jitter != student.jitter {
        Some("student_jitter")
    } else if distilled.epochs != student.epochs {
        Some("student_longer")
    } else {
        None
    }
}

/// Whether the teacher makes fewer validation errors than the student trained alone; `None`
/// without a validation split (the test set never decides it).
fn teacher_beats_student(
    models: &std::collections::BTreeMap<String, ModelReport>,
    teacher_name: &str,
) -> Option<bool> {
    let teacher = models.get(teacher_name)?.validation_errors?;
    let student = models.get("student")?.validation_errors?;
    Some(teacher < student)
}

/// Runs one of the paper's experiments (see [`ExperimentKind`]): obtains the teacher, trains
/// the student alone and distilled on the transfer set (and the extra models the recipe asks
/// for), evaluates them on the test set, draws the charts and writes `config.toml`,
/// `report.json`, `report.md` and `report.html` into the output directory.
pub fn reproduce(opts: &ReproduceOptions) -> Result<Report> {
    let start = Instant::now();
    let dataset = crate::data::load(&opts.config.data_dir)?;
    let mut opts = opts.clone();
    let side = dataset.shape.height.min(dataset.shape.width);
    let energy = dataset.train.mean_squared_norm();
    let fitted = opts
        .config
        .fit_to_data(opts.fit, dataset.train.len(), side, energy);
    let opts = &opts;
    let cfg = &opts.config;
    let roles = cfg.check()?;
    let splits = Splits::from_dataset(
        dataset,
        Some(cfg.validation_size),
        cfg.train_size,
        cfg.test_size,
    )?;
    let selection = cfg.transfer.clone().check(splits.dataset.classes)?;
    let (device, backend) = compute_device();
    let out = &opts.out;
    let lock = RunLock::acquire(out)?;
    let config_toml = toml::to_string_pretty(cfg).map_err(|e| Error::Format {
        what: "config.toml".into(),
        reason: e.to_string(),
    })?;
    write_atomic(&out.join("config.toml"), config_toml.as_bytes())?;
    let mut run = Run {
        opts,
        splits,
        device,
        notes: fitted,
    };
    if let Some(pid) = lock.took_over() {
        run.notes.push(format!(
            "took over the lock of {} left by process {pid}, which no longer runs",
            out.display()
        ));
    }
    let teacher = run.teacher(&roles)?;
    let device = run.device.clone();

    // The students' transfer set: the teacher never sees this selection.
    let transfer = if selection.is_everything() {
        run.splits.clone()
    } else {
        let idx = selection.indices(&run.splits.train, cfg.seed);
        run.notes.push(format!(
            "transfer set: {} of {} training examples (class counts {:?})",
            idx.len(),
            run.splits.train.len(),
            run.splits
                .train
                .subset(&idx)
                .class_counts(run.splits.dataset.classes)
        ));
        run.splits.with_train(run.splits.train.subset(&idx))
    };

    let student_dir = out.join("student");
    let student = train_role(
        &roles.student,
        &transfer,
        &Objective::Hard,
        &device,
        &opts.output(&student_dir, "student"),
    )?;

    let (objective, note) = distill_objective(
        &teacher.model,
        &teacher.dir,
        StudentInputs::new(
            roles.distilled.train.settings().jitter,
            roles.distilled.train.settings().mixup,
            cfg.augment_cache,
            run.splits.dataset.shape,
            roles.distilled.train.settings().seed,
        )?,
        &transfer.train,
        Arc::new(roles.distill),
        &out.join("cache"),
        &device,
    )?;
    run.notes.push(note);
    let distilled_dir = out.join("distilled");
    let distilled = train_role(
        &roles.distilled,
        &transfer,
        &objective,
        &device,
        &opts.output(&distilled_dir, "distilled"),
    )?;

    let mut models = std::collections::BTreeMap::new();
    let mut findings = std::collections::BTreeMap::new();
    let teacher_name = if cfg.members > 1 {
        "ensemble"
    } else {
        "teacher"
    };
    let teacher_report = model_report(
        &teacher.model,
        &teacher.dir,
        &run.splits,
        &device,
        teacher.seconds,
        teacher.validation_errors,
    )?;
    if !teacher.member_reports.is_empty() {
        models.insert("single".to_string(), mean_report(&teacher.member_reports));
    }
    models.insert(teacher_name.to_string(), teacher_report);
    for (name, t, dir) in [
        ("student", &student, &student_dir),
        ("distilled", &distilled, &distilled_dir),
    ] {
        let val = t.history.last().and_then(EpochMetrics::validation);
        models.insert(
            name.to_string(),
            model_report(&t.network, dir, &run.splits, &device, t.seconds, val)?,
        );
    }

    if let Some(trial) = &roles.loss_trial {
        let output = |dir: &Path, label: &str| opts.output(dir, label);
        let students = LossStudents {
            teacher: (&teacher.model, &teacher.dir),
            splits: &run.splits,
            transfer: &transfer,
            cache_dir: &out.join("cache"),
            device: &device,
            out,
            output: &output,
        };
        students.train(
            trial,
            &roles.distilled,
            Arc::new(roles.distill),
            &mut models,
            &mut run.notes,
        )?;
    }

    let missing = selection.missing_classes();
    let mut adjusted = distilled.network.clone();
    let bias_report = adjust_bias(
        &mut adjusted,
        &run.splits,
        &missing,
        cfg.bias_adjust,
        &device,
    )?;
    if let Some(b) = &bias_report {
        let adjusted_dir = out.join("distilled_adjusted");
        adjusted.save_complete(&adjusted_dir)?;
        models.insert(
            "distilled_adjusted".to_string(),
            model_report(
                &adjusted,
                &adjusted_dir,
                &run.splits,
                &device,
                distilled.seconds,
                Some(b.validation_errors_after),
            )?,
        );
    }

    // Extra students on hard labels, each next to what it is compared with.
    let mut extra = |name: &str, label: &str, role: &CheckedRole, splits: &Splits| {
        let dir = out.join(name);
        let t = train_role(
            role,
            splits,
            &Objective::Hard,
            &device,
            &opts.output(&dir, label),
        )?;
        let val = t.history.last().and_then(EpochMetrics::validation);
        let report = model_report(&t.network, &dir, splits, &device, t.seconds, val)?;
        models.insert(name.to_string(), report);
        Ok::<_, Error>(t)
    };
    if let Some(epochs) = cfg.student_full {
        let mut role = roles.student.clone();
        let mut settings = role.train.settings().clone();
        settings.epochs = epochs;
        role.train = settings.check()?;
        extra("student_full", "full data", &role, &run.splits)?;
    }
    let control_name = control_name(
        roles.student.train.settings(),
        roles.distilled.train.settings(),
    );
    let control = match control_name {
        Some(name) => Some(extra(name, name, &roles.distilled, &transfer)?),
        None => None,
    };

    let errors = |k: &str| models.get(k).map(|m| m.test_errors as f64);
    match cfg.experiment {
        ExperimentKind::Ensemble => {
            if let (Some(single), Some(ens), Some(dist)) =
                (errors("single"), errors("ensemble"), errors("distilled"))
            {
                let gain = single - ens;
                if gain > 0.0 {
                    findings.insert("share_of_ensemble_gain_kept".into(), (single - dist) / gain);
                }
            }
        }
        ExperimentKind::SmallData => {
            if let (Some(s), Some(d)) = (errors("student"), errors("distilled")) {
                findings.insert(
                    "distilled_error_reduction_vs_student".into(),
                    1.0 - d / s.max(1.0),
                );
            }
        }
        ExperimentKind::Omit3 | ExperimentKind::Only78 => {
            for name in ["student", "distilled", "distilled_adjusted"] {
                if let Some(m) = models.get(name) {
                    for &c in &missing {
                        let n = m.class_examples[c].max(1) as f64;
                        findings.insert(
                            format!("{name}_class{c}_correct_fraction"),
                            1.0 - m.class_errors[c] as f64 / n,
                        );
                    }
                    findings.insert(
                        format!("{name}_test_error_percent"),
                        error_percent(m.test_errors, m.test_examples),
                    );
                }
            }
        }
        ExperimentKind::Mnist | ExperimentKind::Losses => {}
    }

    let mut charted: Vec<ChartModel> = vec![
        (teacher_name, &teacher.model, &teacher.history),
        ("student", &student.network, &student.history),
    ];
    if let (Some(c), Some(name)) = (&control, control_name) {
        charted.push((name, &c.network, &c.history));
    }
    charted.push(("distilled", &distilled.network, &distilled.history));
    // The bias shift adds no training, so the adjusted student has no curve of its own.
    if bias_report.is_some() {
        charted.push(("distilled_adjusted", &adjusted, &[]));
    }
    let (charts, changed) = write_charts(
        out,
        &run.splits,
        &device,
        &charted,
        roles.distill.temperature() as f64,
    )?;

    for (name, m) in &models {
        run.notes.extend(m.silent_unit_warnings(name));
    }
    let teacher_better_than_student = teacher_beats_student(&models, teacher_name);
    match teacher_better_than_student {
        Some(false) => run.notes.push(format!(
            "warning: the {teacher_name} makes no fewer validation errors than the student \
             trained alone ({} against {}): it has little to teach; a stronger teacher (more \
             epochs, less regularization, a bigger model) is needed on this data",
            models[teacher_name].validation_errors.unwrap_or(0),
            models["student"].validation_errors.unwrap_or(0)
        )),
        None => run.notes.push(
            "whether the teacher beats the student alone was not checked: there is no \
             validation split (the test set is never used for it)"
                .into(),
        ),
        Some(true) => {}
    }
    let env = Environment::detect(backend);
    let report = Report {
        experiment: cfg.experiment.name().into(),
        preset: cfg.preset.name().into(),
        seed: cfg.seed,
        temperature: roles.distill.temperature(),
        alpha: roles.distill.alpha(),
        backend: env.backend.clone(),
        git_commit: env.git_commit.clone(),
        environment: env,
        dataset: run.splits.info(),
        models,
        config: serde_json::to_value(cfg).unwrap_or_default(),
        total_seconds: start.elapsed().as_secs_f64(),
        notes: run.notes,
        dark_knowledge: Some(charts),
        bias_adjust: bias_report,
        findings,
        teacher_better_than_student,
        headline: None,
        changed,
        size_speed: Vec::new(),
    }
    .with_headline();
    report.write(out)?;
    Ok(report)
}
