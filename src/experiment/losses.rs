//! The losses experiment (`reproduce --experiment losses`): one CNN teacher, and two students
//! (the main recipe's MLP and a small CNN), each trained alone, with the 2015 loss, and with
//! every newer loss (DKD, DIST, and KD and DKD on standardized logits), so that the losses are
//! compared on the same teacher, data and schedule.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::presets::ReproduceParams;
use super::student::{Distillation, StudentRun, distill_students, student_report};
use crate::data::Splits;
use crate::distill::{DistillLoss, LossKind, LossParams, Objective, StudentInputs};
use crate::error::Result;
use crate::eval::ModelReport;
use crate::model::Classifier;
use crate::train::{OptimizerKind, RoleConfig, RoleParams, RunOutput, train_role};

/// What the losses experiment trains beyond the main recipe's teacher, student alone and
/// KD-distilled student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossTrialParams {
    /// The second student, a small CNN: trained alone, with KD, and with every loss.
    pub cnn_student: RoleParams,
    /// The losses tried beside KD, on both students.
    pub losses: Vec<LossParams>,
}

/// A [`LossTrialParams`] whose roles and losses passed their checks.
#[derive(Debug, Clone)]
pub struct LossTrialConfig {
    /// The small CNN student.
    pub cnn_student: RoleConfig,
    /// Each loss with the name its students are reported under (`dkd`, `kd_ls`, ...).
    pub losses: Vec<(String, Arc<dyn DistillLoss>)>,
}

impl LossTrialParams {
    /// Checks the CNN student and builds every loss.
    pub fn check(&self) -> Result<LossTrialConfig> {
        let losses = self
            .losses
            .iter()
            .map(|l| Ok((short_name(l), l.check()?)))
            .collect::<Result<_>>()?;
        Ok(LossTrialConfig {
            cnn_student: self.cnn_student.check()?,
            losses,
        })
    }

    /// Stretches the CNN student's schedule and DKD's warm-up by `stretch`, as the other
    /// roles' schedules are on a smaller dataset: DKD's warm-up counts epochs, and should
    /// keep its share of the steps.
    pub fn stretch(&mut self, stretch: usize) {
        let t = &mut self.cnn_student.train;
        t.epochs *= stretch;
        t.warmup_epochs *= stretch;
        for l in &mut self.losses {
            l.warmup_epochs *= stretch;
        }
    }
}

/// `dkd`, `dist`, `kd_ls`, ...: a loss's kind, `_ls` when it standardizes logits.
fn short_name(l: &LossParams) -> String {
    let kind = match l.kind {
        LossKind::Kd => "kd",
        LossKind::Dkd => "dkd",
        LossKind::Dist => "dist",
    };
    match l.standardize {
        true => format!("{kind}_ls"),
        false => kind.to_string(),
    }
}

/// The project's CNN teacher: the best CNN recipe of docs/experiments.md short enough to run
/// beside a whole experiment (with no input dropout and hidden dropout 0.3). The teacher
/// ladder's CNN rung uses it too.
pub(crate) const CNN_TEACHER: &str = "cnn:16,32/128+bn";

/// Turns a preset into the losses experiment's: a CNN teacher, and a small CNN student beside
/// the MLP one. The teacher is the best CNN recipe of docs/experiments.md short enough to run
/// with the rest of the experiment on a laptop; the CNN student follows the MLP student's
/// optimization, with fewer epochs as a CNN epoch costs more.
pub fn losses_recipe(cfg: &mut ReproduceParams, smoke: bool) {
    let (teacher, student, t_ep, s_ep) = match smoke {
        true => ("cnn:4,8/32+bn", "cnn:4,8/32", 3, 3),
        false => (CNN_TEACHER, "cnn:8,16/64", 10, 6),
    };
    cfg.teacher.spec = teacher.into();
    cfg.teacher.input_dropout = 0.0;
    cfg.teacher.hidden_dropout = 0.3;
    cfg.teacher.train.epochs = t_ep;
    cfg.teacher.train.jitter = 2;
    cfg.teacher.train.optimizer = OptimizerKind::Sgd;
    cfg.teacher.train.learning_rate = 0.05;
    // One warm-up epoch, as the main experiment's students: without it the first steps at
    // T = 20 silence units (presets.rs).
    cfg.student.train.warmup_epochs = 1;
    let mut cnn_student = cfg.student.clone();
    cnn_student.spec = student.into();
    cnn_student.train.epochs = s_ep;
    // Every loss at its paper's defaults (LossParams::defaults); the standardized ones at
    // Sun et al.'s base temperature.
    let losses = vec![
        LossParams::defaults(LossKind::Dkd),
        LossParams::defaults(LossKind::Dist),
        LossParams::defaults(LossKind::Kd).standardized(),
        LossParams::defaults(LossKind::Dkd).standardized(),
    ];
    cfg.loss_trial = Some(LossTrialParams {
        cnn_student,
        losses,
    });
}

/// What training the extra students needs from the recipe that obtained the teacher.
pub struct LossStudents<'a> {
    /// The teacher (a network, an ensemble or an ONNX model) and its directory.
    pub teacher: (&'a Classifier, &'a Path),
    /// All splits: the reports evaluate on their test set.
    pub splits: &'a Splits,
    /// The transfer set the students learn from.
    pub transfer: &'a Splits,
    /// Where soft targets are cached.
    pub cache_dir: &'a Path,
    /// Compute device.
    pub device: &'a Device,
    /// The run's directory: each student goes into a directory of its name there.
    pub out: &'a Path,
    /// How a model directory is written (checkpoints, progress), given its path and label.
    pub output: &'a dyn Fn(&Path, &str) -> RunOutput,
}

impl LossStudents<'_> {
    /// Trains, with each loss, the MLP student (`distilled_<loss>`) and the CNN student
    /// (`cnn_distilled_<loss>`), and the CNN student alone (`cnn_student`) and with `kd`
    /// (`cnn_distilled`), each into `out/<name>`, adding their reports to `models` and where
    /// their soft targets came from to `notes`.
    pub fn train(
        &self,
        trial: &LossTrialConfig,
        mlp: &RoleConfig,
        kd: Arc<dyn DistillLoss>,
        models: &mut BTreeMap<String, ModelReport>,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let cnn = &trial.cnn_student;
        let dir = self.out.join("cnn_student");
        let alone = train_role(
            cnn,
            self.transfer,
            &Objective::Hard,
            self.device,
            &(self.output)(&dir, "cnn_student"),
        )?;
        let report = student_report(&alone, &dir, self.splits, self.device)?;
        models.insert("cnn_student".into(), report);
        let kd_students = [("cnn_distilled".to_string(), cnn)];
        self.distill("kd", kd, &kd_students, models, notes)?;
        for (name, loss) in &trial.losses {
            // Both students learn from one objective: its soft targets are read once.
            let students = [
                (format!("distilled_{name}"), mlp),
                (format!("cnn_distilled_{name}"), cnn),
            ];
            self.distill(name, loss.clone(), &students, models, notes)?;
        }
        Ok(())
    }

    /// Distills each of `students` (named for the report) towards `loss`, into `out/<name>`.
    fn distill(
        &self,
        loss_name: &str,
        loss: Arc<dyn DistillLoss>,
        students: &[(String, &RoleConfig)],
        models: &mut BTreeMap<String, ModelReport>,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let distillation = Distillation {
            teacher: self.teacher.0,
            teacher_dir: self.teacher.1,
            loss,
            inputs: StudentInputs::Plain,
            transfer: self.transfer,
            cache_dir: self.cache_dir,
            device: self.device,
            announce: None,
        };
        let runs: Vec<StudentRun> = students
            .iter()
            .map(|(name, role)| StudentRun {
                role,
                output: (self.output)(&self.out.join(name), name),
            })
            .collect();
        let (distilled, note) = distill_students(distillation, &runs)?;
        notes.push(format!("{loss_name}: {note}"));
        for ((name, _), d) in students.iter().zip(&distilled) {
            models.insert(name.clone(), d.report(self.splits, self.device)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{ExperimentKind, Preset};

    #[test]
    fn the_losses_recipe_names_every_loss_and_checks() {
        let cfg = ReproduceParams::recipe(ExperimentKind::Losses, Preset::Quick, 1, "d".into());
        let trial = cfg.loss_trial.as_ref().unwrap();
        let names: Vec<String> = trial.losses.iter().map(short_name).collect();
        assert_eq!(names, ["dkd", "dist", "kd_ls", "dkd_ls"]);
        assert!(trial.losses[2].standardize && trial.losses[2].temperature == 2.0);
        assert!(cfg.teacher.spec.starts_with("cnn:"));
        let roles = cfg.check().unwrap();
        assert_eq!(roles.loss_trial.unwrap().losses.len(), 4);
        // The trial survives config.toml.
        let text = toml::to_string_pretty(&cfg).unwrap();
        assert_eq!(toml::from_str::<ReproduceParams>(&text).unwrap(), cfg);
    }

    #[test]
    fn stretching_keeps_dkds_share_of_the_steps() {
        let mut cfg = ReproduceParams::recipe(ExperimentKind::Losses, Preset::Quick, 1, "d".into());
        cfg.fit_to_data(
            super::super::FitToData {
                schedule: true,
                validation: true,
            },
            1438,
            8,
            15.0,
        );
        let trial = cfg.loss_trial.unwrap();
        assert_eq!(trial.cnn_student.train.epochs, 6 * 42);
        assert_eq!(trial.losses[0].warmup_epochs, 20 * 42);
    }
}
