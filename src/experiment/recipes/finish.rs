//! The steps of a recipe around its training: opening the run, and after the main students,
//! the bias adjustment, the extra students, the findings, the warnings and the report.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Models, ReproduceOptions, Run, control_name, teacher_beats_student};
use crate::compute::compute_device;
use crate::data::{Dataset, Splits, TransferConfig};
use crate::error::{Error, Result};
use crate::eval::{BiasAdjustReport, adjust_bias, error_percent, model_report};
use crate::experiment::presets::{ExperimentKind, ReproduceConfig};
use crate::experiment::student::{Distilled, student_report};
use crate::fsutil::{RunLock, write_atomic};
use crate::model::Network;
use crate::report::{Changed, DarkKnowledge, DistillChoice, Environment, Report, TeacherChoice};
use crate::train::{RoleConfig, Trained};

/// What a run found, for its report.
pub(super) struct Outcome {
    /// Every model's report, by name.
    pub models: Models,
    /// The recipe's own figures (share of the gap closed, ...).
    pub findings: BTreeMap<String, f64>,
    /// The charts of what the teacher knows and the students took on.
    pub charts: DarkKnowledge,
    /// Test images distillation fixed and broke, where charted.
    pub changed: Option<Changed>,
    /// The bias shift for missing classes, where one was made.
    pub bias_adjust: Option<BiasAdjustReport>,
    /// Whether the teacher beat the student alone on validation (`None` without a split).
    pub teacher_better_than_student: Option<bool>,
    /// How the teacher was chosen, when the ladder judged it.
    pub teacher_choice: Option<TeacherChoice>,
    /// How T and alpha were chosen, when a grid chose them.
    pub distill_choice: Option<DistillChoice>,
}

impl<'a> Run<'a> {
    /// Splits the data, takes the output directory's lock and writes `config.toml`: what every
    /// step after shares. `notes` are those the config's fitting to the data left.
    pub(super) fn open(
        opts: &'a ReproduceOptions,
        dataset: Dataset,
        notes: Vec<String>,
    ) -> Result<Run<'a>> {
        let cfg = &opts.config;
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
            notes,
            selection,
            backend,
            lock,
        };
        if let Some(pid) = run.lock.took_over() {
            run.notes.push(format!(
                "took over the lock of {} left by process {pid}, which no longer runs",
                out.display()
            ));
        }
        Ok(run)
    }

    /// With the transfer set lacking classes and a bias adjustment asked for: the distilled
    /// student with those classes' bias raised, saved as `distilled_adjusted` and reported.
    pub(super) fn adjust_bias(
        &self,
        distilled: &Distilled,
        models: &mut Models,
    ) -> Result<Option<(Network, BiasAdjustReport)>> {
        let missing = self.selection.missing_classes();
        let mut adjusted = distilled.trained.network.clone();
        let mode = self.opts.config.bias_adjust;
        let Some(b) = adjust_bias(&mut adjusted, &self.splits, &missing, mode, &self.device)?
        else {
            return Ok(None);
        };
        let adjusted_dir = self.opts.out.join("distilled_adjusted");
        adjusted.save_complete(&adjusted_dir)?;
        let report = model_report(
            &adjusted,
            &adjusted_dir,
            &self.splits,
            &self.device,
            distilled.trained.seconds,
            Some(b.validation_errors_after),
        )?;
        models.insert("distilled_adjusted".to_string(), report);
        Ok(Some((adjusted, b)))
    }

    /// Extra students on hard labels, each next to what it is compared with: the student on
    /// all the data, and the control student trained as the distilled one is (returned with
    /// its name, for the charts).
    pub(super) fn extra_students(
        &self,
        roles: &ReproduceConfig,
        transfer: &Splits,
        models: &mut Models,
    ) -> Result<Option<(&'static str, Trained)>> {
        if let Some(epochs) = self.opts.config.student_full {
            let mut role = roles.student.clone();
            let mut settings = role.train.settings().clone();
            settings.epochs = epochs;
            role.train = settings.check()?;
            self.extra_student("student_full", "full data", &role, &self.splits, models)?;
        }
        let name = control_name(
            roles.student.train.settings(),
            roles.distilled.train.settings(),
        );
        let Some(name) = name else {
            return Ok(None);
        };
        let control = self.extra_student(name, name, &roles.distilled, transfer, models)?;
        Ok(Some((name, control)))
    }

    fn extra_student(
        &self,
        name: &str,
        label: &str,
        role: &RoleConfig,
        splits: &Splits,
        models: &mut Models,
    ) -> Result<Trained> {
        let t = self.hard_student(name, label, role, splits)?;
        let dir = self.opts.out.join(name);
        models.insert(
            name.to_string(),
            student_report(&t, &dir, splits, &self.device)?,
        );
        Ok(t)
    }

    /// Notes the silent units of every model, and a teacher with little to teach; whether the
    /// teacher beats the student alone on validation.
    pub(super) fn note_warnings(&mut self, models: &Models) -> Option<bool> {
        for (name, m) in models {
            self.notes.extend(m.silent_unit_warnings(name));
        }
        let teacher_name = self.teacher_name();
        let better = teacher_beats_student(models, teacher_name);
        match better {
            Some(false) => self.notes.push(format!(
                "warning: the {teacher_name} makes no fewer validation errors than the student \
                 trained alone ({} against {}): it has little to teach; a stronger teacher (more \
                 epochs, less regularization, a bigger model) is needed on this data",
                models[teacher_name].validation_errors.unwrap_or(0),
                models["student"].validation_errors.unwrap_or(0)
            )),
            None => self.notes.push(
                "whether the teacher beats the student alone was not checked: there is no \
                 validation split (the test set is never used for it)"
                    .into(),
            ),
            Some(true) => {}
        }
        better
    }

    /// Writes `report.json`, `report.md` and `report.html` into the output directory.
    pub(super) fn write_report(
        self,
        roles: &ReproduceConfig,
        outcome: Outcome,
        start: Instant,
    ) -> Result<Report> {
        let cfg = &self.opts.config;
        let env = Environment::detect(self.backend);
        let report = Report {
            experiment: cfg.experiment.name().into(),
            preset: cfg.preset.name().into(),
            seed: cfg.seed,
            temperature: roles.distill.temperature(),
            alpha: roles.distill.alpha(),
            backend: env.backend.clone(),
            git_commit: env.git_commit.clone(),
            environment: env,
            dataset: self.splits.info(),
            models: outcome.models,
            config: serde_json::to_value(cfg).unwrap_or_default(),
            total_seconds: start.elapsed().as_secs_f64(),
            notes: self.notes,
            dark_knowledge: Some(outcome.charts),
            bias_adjust: outcome.bias_adjust,
            findings: outcome.findings,
            teacher_better_than_student: outcome.teacher_better_than_student,
            headline: None,
            changed: outcome.changed,
            size_speed: Vec::new(),
            teacher_choice: outcome.teacher_choice,
            distill_choice: outcome.distill_choice,
        }
        .with_headline();
        report.write(&self.opts.out)?;
        Ok(report)
    }
}

/// The numbers an experiment is about, beyond each model's own: the share of an ensemble's
/// gain the distilled student keeps, its error reduction on small data, or how often it gets
/// the classes it never saw right.
pub(super) fn findings(
    kind: ExperimentKind,
    models: &Models,
    selection: &TransferConfig,
) -> BTreeMap<String, f64> {
    let mut findings = BTreeMap::new();
    let errors = |k: &str| models.get(k).map(|m| m.test_errors as f64);
    match kind {
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
                    for c in selection.missing_classes() {
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
    findings
}
