//! The use case every recipe and command shares: distill students from a teacher (soft targets
//! computed or read once, then each student trained towards them) and report them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use crate::data::Splits;
use crate::distill::{DistillLoss, StudentInputs, distill_objective};
use crate::error::Result;
use crate::eval::{ModelReport, model_report};
use crate::model::Classifier;
use crate::train::{EpochMetrics, RoleConfig, RunOutput, Trained, train_role};

/// What distilling needs besides the students: the teacher, the loss and how the students see
/// their inputs, the transfer set, and where soft targets are cached.
#[derive(Clone)]
pub struct Distillation<'a> {
    /// The teacher (a network, an ensemble or an ONNX model).
    pub teacher: &'a Classifier,
    /// The teacher's directory (or file), which names its soft targets in the cache.
    pub teacher_dir: &'a Path,
    /// The loss, which also fixes the temperature.
    pub loss: Arc<dyn DistillLoss>,
    /// How the students' inputs are presented (plain, jittered live, or cached views).
    pub inputs: StudentInputs,
    /// The splits the students train on; their `train` split is the transfer set.
    pub transfer: &'a Splits,
    /// Where soft targets are cached.
    pub cache_dir: &'a Path,
    /// Compute device.
    pub device: &'a Device,
    /// When given, printed to stderr with the note on where the soft targets came from, before
    /// any student trains: a command's user learns it while waiting.
    pub announce: Option<&'a str>,
}

/// One student to distill: its role and where its model goes.
#[derive(Clone)]
pub struct StudentRun<'a> {
    /// The student's architecture and training settings.
    pub role: &'a RoleConfig,
    /// Its model directory, progress label and checkpoints.
    pub output: RunOutput,
}

/// A distilled student and its model directory.
#[derive(Debug, Clone)]
pub struct Distilled {
    /// The trained student.
    pub trained: Trained,
    /// Its model directory.
    pub dir: PathBuf,
}

impl Distilled {
    /// The student evaluated on the test set of `splits`, with its last epoch's validation
    /// errors.
    pub fn report(&self, splits: &Splits, device: &Device) -> Result<ModelReport> {
        student_report(&self.trained, &self.dir, splits, device)
    }
}

/// A trained model in `dir` evaluated on the test set of `splits`, with its last epoch's
/// validation errors.
pub fn student_report(
    t: &Trained,
    dir: &Path,
    splits: &Splits,
    device: &Device,
) -> Result<ModelReport> {
    let val = t.history.last().and_then(EpochMetrics::validation);
    model_report(&t.network, dir, splits, device, t.seconds, val)
}

/// Distills each of `students`, in order, from one set of the teacher's soft targets (computed,
/// or read from the cache, once); the students, and a note on where the soft targets came from.
pub fn distill_students(
    d: Distillation<'_>,
    students: &[StudentRun<'_>],
) -> Result<(Vec<Distilled>, String)> {
    let (objective, note) = distill_objective(
        d.teacher,
        d.teacher_dir,
        d.inputs,
        &d.transfer.train,
        d.loss,
        d.cache_dir,
        d.device,
    )?;
    if let Some(prefix) = d.announce {
        eprintln!("{prefix}{note}");
    }
    let distilled = students
        .iter()
        .map(|s| {
            let trained = train_role(s.role, d.transfer, &objective, d.device, &s.output)?;
            Ok(Distilled {
                trained,
                dir: s.output.dir.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok((distilled, note))
}

/// Distills one student (see [`distill_students`]); the student, and a note on where its soft
/// targets came from.
pub fn distill_student(
    d: Distillation<'_>,
    student: StudentRun<'_>,
) -> Result<(Distilled, String)> {
    let (mut distilled, note) = distill_students(d, std::slice::from_ref(&student))?;
    let one = distilled.pop().expect("one student in, one out");
    Ok((one, note))
}
