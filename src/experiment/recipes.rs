//! The paper's experiments as recipes: obtain a teacher (train, reuse or take one given),
//! train the student alone and distilled on the transfer set, evaluate, chart and report.
//! Everything here composes the stages below; nothing is computed here that a stage owns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;

use self::finish::{Outcome, findings};
use super::grid::{GridStudent, TEMPERATURES, grid_dir, grid_reason, search};
use super::losses::{LossStudents, LossTrialConfig};
use super::presets::{FitToData, ReproduceConfig, ReproduceParams};
use super::student::{Distillation, Distilled, StudentRun, distill_student, student_report};
use crate::data::{Splits, TransferConfig};
use crate::distill::{DistillParams, Objective, StudentInputs};
use crate::error::{Error, Result};
use crate::eval::{ModelReport, evaluate, mean_report, model_report};
use crate::fsutil::{RunLock, write_atomic};
use crate::model::{Classifier, Network, OpenOptions, Predictor, weights_path};
use crate::report::{ChartModel, DistillChoice, Report, write_charts};
use crate::train::{
    Checkpoints, EpochMetrics, RoleConfig, RunOutput, TrainParams, Trained, earlier_training,
    train_role,
};

mod finish;
mod ladder;

pub(super) use ladder::judged_alone;

/// Options of `distill reproduce`.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// The run's configuration (from a preset, possibly overridden).
    pub config: ReproduceParams,
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
    /// Climb the teacher ladder when the recipe's teacher does not beat the student
    /// alone on validation (`ladder.rs`).
    pub ladder: bool,
    /// Minutes the whole run may take before the teacher ladder stops climbing: a rung in
    /// training stops after the epoch in which the budget runs out, and no further rung
    /// starts. `None`: no limit.
    pub budget_minutes: Option<f64>,
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

impl TeacherRun {
    /// One network trained by [`Run::hard_model`] into `dir`.
    fn single(
        (net, seconds, validation_errors, history): (
            Network,
            f64,
            Option<usize>,
            Vec<EpochMetrics>,
        ),
        dir: PathBuf,
    ) -> TeacherRun {
        TeacherRun {
            model: Classifier::Single(net),
            dir,
            seconds,
            validation_errors,
            history,
            member_reports: Vec::new(),
        }
    }
}

/// Everything an experiment run shares between its steps.
struct Run<'a> {
    opts: &'a ReproduceOptions,
    splits: Splits,
    device: Device,
    notes: Vec<String>,
    /// Which training examples the students learn from.
    selection: TransferConfig,
    backend: &'static str,
    /// Held for the whole run.
    lock: RunLock,
}

/// Each model's report, by its name in the report.
type Models = BTreeMap<String, ModelReport>;

impl Run<'_> {
    /// How a given teacher is opened: an ONNX file takes the data's image shape.
    fn open_options(&self) -> OpenOptions {
        OpenOptions {
            shape: Some(self.splits.dataset.shape),
            ..OpenOptions::default()
        }
    }

    /// Trains (or reuses, when `dir` holds a model trained with the same config and data) one
    /// network on hard labels with all the training data, stopping after the epoch in which
    /// `deadline` passes, if one is given (the teacher ladder's budget).
    fn hard_model(
        &mut self,
        role: &RoleConfig,
        dir: &Path,
        label: &str,
        deadline: Option<Instant>,
    ) -> Result<(Network, f64, Option<usize>, Vec<EpochMetrics>)> {
        let stamp = format!(
            "{}\ndata={}\n",
            toml::to_string(&role.params()).unwrap_or_default(),
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
            &RunOutput {
                deadline,
                ..self.opts.output(dir, label)
            },
        )?;
        write_atomic(&stamp_path, stamp.as_bytes())?;
        let val = t.history.last().and_then(EpochMetrics::validation);
        Ok((t.network, t.seconds, val, t.history))
    }

    fn teacher(&mut self, roles: &ReproduceConfig) -> Result<TeacherRun> {
        let opts = self.opts;
        if let Some(dir) = &opts.teacher {
            return self.given_teacher(dir);
        }
        if opts.config.members > 1 {
            return self.ensemble_teacher(roles);
        }
        let dir = opts.out.join("teacher");
        let trained = self.hard_model(&roles.teacher, &dir, "teacher", None)?;
        Ok(TeacherRun::single(trained, dir))
    }

    /// The trained teacher in `dir`, taken as it is.
    fn given_teacher(&mut self, dir: &Path) -> Result<TeacherRun> {
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
            "teacher taken from {} (not retrained; its training time, {seconds:.1} s, is the \
             one reported)",
            dir.display()
        ));
        Ok(TeacherRun {
            model,
            dir: dir.to_path_buf(),
            seconds,
            validation_errors,
            history,
            member_reports: Vec::new(),
        })
    }

    /// An ensemble of `members` teachers, each trained (or reused) with its own seed.
    fn ensemble_teacher(&mut self, roles: &ReproduceConfig) -> Result<TeacherRun> {
        let out = &self.opts.out;
        let mut dirs = Vec::new();
        let mut seconds = 0.0;
        let mut member_reports = Vec::new();
        let mut history = Vec::new();
        for k in 0..self.opts.config.members {
            let mut role = roles.teacher.clone();
            let mut settings = role.train.settings().clone();
            settings.seed = settings.seed.wrapping_add(101 * k as u64);
            role.train = settings.check()?;
            let dir = out.join("members").join(format!("m{}", k + 1));
            let label = format!("member {}", k + 1);
            let (net, secs, val, h) = self.hard_model(&role, &dir, &label, None)?;
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
        Ok(TeacherRun {
            validation_errors: self.validation_errors(&model)?,
            model,
            dir,
            seconds,
            history,
            member_reports,
        })
    }

    /// Counted here, as no training run records it for an ensemble: without it the report
    /// could not say whether the ensemble beats the student alone.
    fn validation_errors(&self, model: &Classifier) -> Result<Option<usize>> {
        if self.splits.validation.is_empty() {
            return Ok(None);
        }
        let e = evaluate(
            model,
            &self.splits.validation,
            self.splits.dataset.classes,
            &self.device,
        )?;
        Ok(Some(e.errors))
    }

    /// The students' transfer set: the teacher never sees this selection.
    fn transfer_set(&mut self) -> Splits {
        let (cfg, selection) = (&self.opts.config, &self.selection);
        if selection.is_everything() {
            return self.splits.clone();
        }
        let idx = selection.indices(&self.splits.train, cfg.seed);
        self.notes.push(format!(
            "transfer set: {} of {} training examples (class counts {:?})",
            idx.len(),
            self.splits.train.len(),
            self.splits
                .train
                .subset(&idx)
                .class_counts(self.splits.dataset.classes)
        ));
        self.splits.with_train(self.splits.train.subset(&idx))
    }

    /// Trains a student on hard labels from `splits` into `out/<name>`.
    fn hard_student(
        &self,
        name: &str,
        label: &str,
        role: &RoleConfig,
        splits: &Splits,
    ) -> Result<Trained> {
        let dir = self.opts.out.join(name);
        let output = self.opts.output(&dir, label);
        train_role(role, splits, &Objective::Hard, &self.device, &output)
    }

    /// The student distilled from `teacher` on `transfer`, into `out/distilled`: at the
    /// config's T and alpha, or at the setting of a grid with the fewest validation errors
    /// (each grid student in `out/grid/`), which then becomes `roles.distill`.
    fn distilled(
        &mut self,
        roles: &mut ReproduceConfig,
        teacher: &TeacherRun,
        transfer: &Splits,
    ) -> Result<(Distilled, Option<DistillChoice>)> {
        let s = roles.distilled.train.settings();
        let out = &self.opts.out;
        let cache_dir = out.join("cache");
        let distillation = Distillation {
            teacher: &teacher.model,
            teacher_dir: &teacher.dir,
            loss: Arc::new(roles.distill),
            inputs: StudentInputs::new(
                s.jitter,
                s.mixup,
                self.opts.config.augment_cache,
                self.splits.dataset.shape,
                s.seed,
            )?,
            transfer,
            cache_dir: &cache_dir,
            device: &self.device,
            announce: None,
        };
        let cfg = &self.opts.config;
        let (auto_t, auto_a) = (cfg.auto_temperature == Some(true), cfg.auto_alpha);
        if !auto_t && !auto_a {
            let student = StudentRun {
                role: &roles.distilled,
                output: self.opts.output(&out.join("distilled"), "distilled"),
            };
            let (distilled, note) = distill_student(distillation, student)?;
            self.notes.push(note);
            return Ok((distilled, None));
        }
        let d = roles.distill;
        let temperatures = match auto_t {
            true => TEMPERATURES.to_vec(),
            false => vec![d.temperature()],
        };
        let student = |temperature, alpha| {
            let loss = DistillParams { temperature, alpha }.check()?;
            let dir = grid_dir(out, temperature, alpha);
            let label = format!("distilled T={temperature} alpha={alpha}");
            Ok(GridStudent {
                temperature,
                alpha,
                loss: Arc::new(loss),
                output: self.opts.output(&dir, &label),
            })
        };
        let what = (&temperatures[..], d.alpha(), auto_a);
        let (grid, note) = search(&distillation, &roles.distilled, what, student)?;
        self.notes.push(note);
        let (distilled, choice) =
            grid.finish(&out.join("distilled"), grid_reason(auto_t, auto_a))?;
        let kept = choice.chosen();
        roles.distill = DistillParams {
            temperature: kept.temperature,
            alpha: kept.alpha,
        }
        .check()?;
        Ok((distilled, Some(choice)))
    }

    /// The teacher's name in the report: `ensemble` for several members.
    fn teacher_name(&self) -> &'static str {
        match self.opts.config.members > 1 {
            true => "ensemble",
            false => "teacher",
        }
    }

    /// The reports of the teacher (and with members, their mean as `single`), the student
    /// alone and the distilled student.
    fn main_reports(
        &self,
        teacher: &TeacherRun,
        student: &Trained,
        distilled: &Distilled,
    ) -> Result<Models> {
        let mut models = Models::new();
        let teacher_report = model_report(
            &teacher.model,
            &teacher.dir,
            &self.splits,
            &self.device,
            teacher.seconds,
            teacher.validation_errors,
        )?;
        if !teacher.member_reports.is_empty() {
            models.insert("single".to_string(), mean_report(&teacher.member_reports));
        }
        models.insert(self.teacher_name().to_string(), teacher_report);
        let student_dir = self.opts.out.join("student");
        let student = student_report(student, &student_dir, &self.splits, &self.device)?;
        models.insert("student".to_string(), student);
        let distilled = distilled.report(&self.splits, &self.device)?;
        models.insert("distilled".to_string(), distilled);
        Ok(models)
    }

    /// The losses experiment's further students, with their reports in `models`.
    fn loss_students(
        &mut self,
        trial: &LossTrialConfig,
        roles: &ReproduceConfig,
        teacher: &TeacherRun,
        transfer: &Splits,
        models: &mut Models,
    ) -> Result<()> {
        let opts = self.opts;
        let output = |dir: &Path, label: &str| opts.output(dir, label);
        let students = LossStudents {
            teacher: (&teacher.model, &teacher.dir),
            splits: &self.splits,
            transfer,
            cache_dir: &opts.out.join("cache"),
            device: &self.device,
            out: &opts.out,
            output: &output,
        };
        students.train(
            trial,
            &roles.distilled,
            Arc::new(roles.distill),
            models,
            &mut self.notes,
        )
    }
}

/// The name of a control student trained alone on hard labels exactly as the distilled student
/// is trained, after what sets it apart from the student alone; `None` when nothing does.
/// Without it, what the shifted or blended images (or the longer schedule) teach would be
/// credited to the soft targets (docs/experiments.md shows shifts alone closing most of the
/// gap on the paper preset).
fn control_name(student: &TrainParams, distilled: &TrainParams) -> Option<&'static str> {
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
pub(super) fn teacher_beats_student(models: &Models, teacher_name: &str) -> Option<bool> {
    let teacher = models.get(teacher_name)?.validation_errors?;
    let student = models.get("student")?.validation_errors?;
    Some(teacher < student)
}

/// Runs one of the paper's experiments (see [`ExperimentKind`](super::ExperimentKind)):
/// obtains the teacher, trains the student alone and distilled on the transfer set (and the
/// extra models the recipe asks for), evaluates them on the test set, draws the charts and
/// writes `config.toml`, `report.json`, `report.md` and `report.html` into the output
/// directory.
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
    let mut roles = opts.config.check()?;
    let mut run = Run::open(opts, dataset, fitted)?;
    let teacher = run.teacher(&roles)?;
    let transfer = run.transfer_set();
    let student = run.hard_student("student", "student", &roles.student, &transfer)?;
    let (teacher, teacher_choice) = run.choose_teacher(teacher, &student, &roles.teacher, start)?;
    let (distilled, distill_choice) = run.distilled(&mut roles, &teacher, &transfer)?;
    let mut models = run.main_reports(&teacher, &student, &distilled)?;
    if let Some(trial) = &roles.loss_trial {
        run.loss_students(trial, &roles, &teacher, &transfer, &mut models)?;
    }
    let adjusted = run.adjust_bias(&distilled, &mut models)?;
    let control = run.extra_students(&roles, &transfer, &mut models)?;
    let findings = findings(opts.config.experiment, &models, &run.selection);
    let mut charted: Vec<ChartModel> = vec![
        (run.teacher_name(), &teacher.model, &teacher.history),
        ("student", &student.network, &student.history),
    ];
    if let Some((name, c)) = &control {
        charted.push((*name, &c.network, &c.history));
    }
    let d = &distilled.trained;
    charted.push(("distilled", &d.network, &d.history));
    // The bias shift adds no training, so the adjusted student has no curve of its own.
    if let Some((net, _)) = &adjusted {
        charted.push(("distilled_adjusted", net, &[]));
    }
    let temperature = roles.distill.temperature() as f64;
    let (charts, changed) =
        write_charts(&opts.out, &run.splits, &run.device, &charted, temperature)?;
    let outcome = Outcome {
        teacher_better_than_student: run.note_warnings(&models),
        models,
        findings,
        charts,
        changed,
        bias_adjust: adjusted.map(|(_, b)| b),
        teacher_choice,
        distill_choice,
    };
    run.write_report(&roles, outcome, start)
}
