//! What the training loop asks of an objective: that it fits the data and the student, a key
//! that tells runs towards different objectives apart, and each batch's soft targets.

use burn::tensor::{Int, Tensor};

use super::cache::ViewTargets;
use super::loss::DistillLoss;
use super::objective::Objective;
use crate::data::{ImageShape, Split};
use crate::error::{Error, Result, Setting};
use crate::model::Predictor;

impl Objective {
    /// Refuses an objective whose soft targets (or teacher) do not fit the transfer set `train`
    /// of `shape` images and a student of `classes` classes, or that cannot follow images
    /// blended by `mixup`. The student's inputs are taken to match `train` (checked before).
    pub fn check_fits(
        &self,
        train: &Split,
        shape: ImageShape,
        classes: usize,
        mixup: f64,
    ) -> Result<()> {
        self.check_shapes(train, shape, classes)?;
        // Soft targets stored ahead of time describe unblended images. The commands refuse this
        // pairing before loading anything (`StudentInputs::check`); a library caller that builds
        // the objective itself meets the same refusal here rather than a silently wrong target.
        let cached = matches!(
            self,
            Objective::Distill { .. } | Objective::DistillViews { .. }
        );
        if mixup > 0.0 && cached {
            return Err(Error::config(format!(
                "mixup blends new images on every batch, which only a live teacher can label: \
                 cached soft targets cannot teach a student trained with {}",
                Setting::Mixup
            )));
        }
        Ok(())
    }

    fn check_shapes(&self, train: &Split, shape: ImageShape, classes: usize) -> Result<()> {
        let n = train.len();
        match self {
            Objective::Hard => Ok(()),
            Objective::Distill {
                teacher_log_probs, ..
            } => {
                let [rows, cols] = teacher_log_probs.dims();
                if rows != n || cols != classes {
                    return Err(Error::Mismatch(format!(
                        "teacher soft targets are {rows}x{cols} but the transfer set has {n} \
                         examples and the student {classes} classes"
                    )));
                }
                Ok(())
            }
            Objective::DistillViews { targets, .. } => {
                let [rows, cols] = targets.log_probs.dims();
                if rows != n * targets.spec.views || cols != classes || targets.spec.shape != shape
                {
                    return Err(Error::Mismatch(format!(
                        "cached views hold {rows}x{cols} soft targets of {:?} images, but the \
                         transfer set has {n} examples of {shape:?} in {} views and the student \
                         {classes} classes",
                        targets.spec.shape, targets.spec.views
                    )));
                }
                Ok(())
            }
            Objective::DistillLive { teacher, .. } => {
                if teacher.classes() != classes || teacher.inputs() != train.pixels {
                    return Err(Error::Mismatch(format!(
                        "the teacher maps {} inputs to {} classes but the student {} inputs to \
                         {classes} classes",
                        teacher.inputs(),
                        teacher.classes(),
                        train.pixels
                    )));
                }
                Ok(())
            }
        }
    }

    /// The objective with its soft targets' shapes and a hash of their values, as it enters a
    /// run's identity: a run resumes only towards the objective it started with, and soft
    /// targets of another teacher (a ladder that chose another rung since) are another
    /// objective even at the same loss and shape.
    pub fn kind(&self) -> String {
        match self {
            Objective::Hard => "hard labels".to_string(),
            Objective::Distill {
                loss,
                teacher_log_probs,
            } => format!(
                "{} cached {:?} {}",
                loss.describe(),
                teacher_log_probs.dims(),
                values_hash(teacher_log_probs)
            ),
            Objective::DistillLive { loss, teacher } => {
                format!("{} live {}", loss.describe(), teacher.describe())
            }
            Objective::DistillViews { loss, targets } => format!(
                "{} cached views {:?} {:?} {}",
                loss.describe(),
                targets.log_probs.dims(),
                targets.spec,
                values_hash(&targets.log_probs)
            ),
        }
    }

    /// The cached views each batch is drawn from, when the objective has them.
    pub fn views(&self) -> Option<&ViewTargets> {
        match self {
            Objective::DistillViews { targets, .. } => Some(targets),
            _ => None,
        }
    }

    /// A batch's soft targets and the loss they feed, or `None` on hard labels: the cached rows
    /// `rows` of the transfer set, the live teacher run on the batch's inputs `x`, or the soft
    /// targets `views` of the views the batch was drawn from.
    pub fn batch_targets(
        &self,
        rows: Tensor<1, Int>,
        x: &Tensor<2>,
        views: Option<Tensor<2>>,
    ) -> Result<Option<(Tensor<2>, &dyn DistillLoss)>> {
        Ok(match self {
            Objective::Hard => None,
            Objective::Distill {
                loss,
                teacher_log_probs,
            } => Some((teacher_log_probs.clone().select(0, rows), loss.as_ref())),
            Objective::DistillLive { loss, teacher } => {
                Some((teacher.log_probs(x, loss.temperature())?, loss.as_ref()))
            }
            Objective::DistillViews { loss, .. } => views.map(|t| (t, loss.as_ref())),
        })
    }
}

/// A short SHA-256 of a tensor's values, as they are in memory.
fn values_hash(t: &Tensor<2>) -> String {
    crate::fsutil::sha256_hex(t.clone().into_data().as_bytes())[..16].to_string()
}
