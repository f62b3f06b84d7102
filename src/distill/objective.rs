//! What a student learns from: hard labels, soft targets cached for the transfer set, or a
//! teacher run live on every (augmented) batch.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Tensor};

use super::cache::{
    CacheOutcome, StudentInputs, ViewTargets, teacher_soft_targets, view_soft_targets,
};
use super::loss::DistillLoss;
use crate::data::Split;
use crate::error::{Result, Setting};
use crate::model::{Classifier, Predictor};

/// What the student learns from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per run, never stored in bulk
pub enum Objective {
    /// Cross-entropy against the true labels.
    Hard,
    /// A distillation loss against teacher log-probabilities at its temperature, one row per
    /// transfer example.
    Distill {
        /// The loss (KD, ...), which also fixes the temperature.
        loss: Arc<dyn DistillLoss>,
        /// `[transfer examples, classes]` teacher log-probabilities at the loss's temperature.
        teacher_log_probs: Tensor<2>,
    },
    /// A distillation loss against a teacher run on every batch as the student sees it:
    /// needed when the student's inputs are jittered, since cached soft targets describe only
    /// the unshifted images.
    DistillLive {
        /// The loss (KD, ...).
        loss: Arc<dyn DistillLoss>,
        /// The teacher (a network or an ensemble), in inference mode.
        teacher: Classifier,
    },
    /// A distillation loss against soft targets cached for fixed shifted views of every
    /// transfer example; each batch shows every example in one of its views.
    DistillViews {
        /// The loss (KD, ...).
        loss: Arc<dyn DistillLoss>,
        /// The views and their soft targets.
        targets: Arc<ViewTargets>,
    },
}

impl Objective {
    /// What the student learns from, with every loss hyperparameter, as recorded in a model
    /// directory's `config.toml`.
    pub fn describe(&self) -> String {
        match self {
            Objective::Hard => "hard labels".into(),
            Objective::Distill { loss, .. } => {
                format!("{} from cached soft targets", loss.describe())
            }
            Objective::DistillLive { loss, teacher } => {
                format!("{} from {} run live", loss.describe(), teacher.describe())
            }
            Objective::DistillViews { loss, targets } => format!(
                "{} from soft targets cached for {} views (shifts of up to {} px)",
                loss.describe(),
                targets.spec.views,
                targets.spec.max_shift
            ),
        }
    }
}

/// The distillation objective for a student whose inputs are presented as `inputs` say, and a
/// note on where its soft targets come from. The teacher's soft targets for `transfer` come
/// from (or go into) the cache under `cache_dir` (see [`teacher_soft_targets`]); for shifted
/// inputs, either the teacher runs live on every batch or the soft targets of fixed views are
/// cached (see [`view_soft_targets`]).
pub fn distill_objective(
    teacher: &Classifier,
    teacher_dir: &Path,
    inputs: StudentInputs,
    transfer: &Split,
    loss: Arc<dyn DistillLoss>,
    cache_dir: &Path,
    device: &Device,
) -> Result<(Objective, String)> {
    match inputs {
        StudentInputs::Plain => {}
        StudentInputs::Live { jitter, mixup } => {
            let changed = match (jitter, mixup) {
                (0, m) => format!("blended by mixup ({m})"),
                (j, 0.0) => {
                    format!(
                        "jittered by up to {j} px; {} K caches K views instead",
                        Setting::AugmentCache
                    )
                }
                (j, m) => format!("jittered by up to {j} px and blended by mixup ({m})"),
            };
            let note = format!(
                "teacher soft targets computed live on every batch (the student's inputs are \
                 {changed})"
            );
            let teacher = teacher.clone();
            return Ok((Objective::DistillLive { loss, teacher }, note));
        }
        StudentInputs::Views(spec) => {
            let (targets, info) = view_soft_targets(
                teacher,
                teacher_dir,
                transfer,
                spec,
                loss.temperature(),
                cache_dir,
                device,
            )?;
            let note = info.note(&spec);
            let targets = Arc::new(targets);
            return Ok((Objective::DistillViews { loss, targets }, note));
        }
    }
    let t0 = Instant::now();
    let (targets, outcome, path) = teacher_soft_targets(
        teacher,
        teacher_dir,
        transfer,
        loss.temperature(),
        cache_dir,
        device,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let note = match outcome {
        CacheOutcome::Hit => format!("teacher soft targets read from cache {}", path.display()),
        CacheOutcome::Miss => format!(
            "teacher soft targets computed in {secs:.1} s and cached at {}",
            path.display()
        ),
        CacheOutcome::Shards(n) => format!(
            "teacher soft targets joined from {n} shards in {}",
            path.display()
        ),
        CacheOutcome::MissBesideShards(n) => format!(
            "teacher soft targets computed in {secs:.1} s and cached at {} ({n} shard files \
             there belong to another teacher, transfer set or temperature and were not used)",
            path.display()
        ),
        CacheOutcome::Stale(why) => {
            format!("stale cache {} ignored ({why}); recomputed", path.display())
        }
    };
    let objective = Objective::Distill {
        loss,
        teacher_log_probs: targets,
    };
    Ok((objective, note))
}
