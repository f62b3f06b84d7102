//! Stage 4, distill: the method itself. Temperature softmax, the distillation losses, teacher
//! soft targets (live, cached on disk, or cached per shifted view), and the objective a student
//! trains towards.
//!
//! Owns: everything that turns a teacher into targets for a student.
//! May use: `compute`, `data`, `model` and the foundation modules.
//!
//! Teachers hand over their knowledge as log-probabilities at the distillation temperature
//! (`log softmax(z / T)`; for an ensemble, the log of its members' averaged probabilities). That
//! one representation serves single nets and ensembles alike, and is what the cache stores.

mod cache;
mod loss;
mod objective;
mod objective_training;

pub use cache::{
    CacheKey, CacheOutcome, MAX_VIEWS, SHARD_ALIGN, Shard, ShardWrite, StudentInputs, ViewSpec,
    ViewTargets, ViewsCacheInfo, cached_soft_targets, release_kept_pass, teacher_soft_targets,
    view_soft_targets, write_soft_target_shard,
};
pub use loss::{
    DistillConfig, DistillLoss, DistillParams, LossKind, LossParams, check_temperature,
    distillation_loss, hard_loss, log_soft_targets, soft_loss, soft_targets, softmax_host, zscore,
};
pub use objective::{Objective, distill_objective};
