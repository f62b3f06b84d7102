//! Stage 3, distill: the method itself. Temperature softmax, the distillation losses, teacher
//! soft targets (live, cached on disk, or cached per shifted view), and the objective a student
//! trains towards.
//!
//! Owns: everything that turns a teacher into targets for a student.
//! May use: `data`, `model` and the foundation modules.
//!
//! Teachers hand over their knowledge as log-probabilities at the distillation temperature
//! (`log softmax(z / T)`; for an ensemble, the log of its members' averaged probabilities). That
//! one representation serves single nets and ensembles alike, and is what the cache stores.

mod loss;
mod losses;
mod objective;
mod objective_training;
mod shards;
mod soft_targets;
mod views;

pub use loss::{
    DistillConfig, DistillLoss, DistillSettings, check_temperature, distillation_loss, hard_loss,
    log_soft_targets, soft_loss, soft_targets, softmax_host,
};
pub use losses::{LossKind, LossSettings, zscore};
pub use objective::{Objective, distill_objective};
pub use shards::{SHARD_ALIGN, Shard, ShardWrite, write_soft_target_shard};
pub use soft_targets::{CacheKey, CacheOutcome, cached_soft_targets, teacher_soft_targets};
pub use views::{
    MAX_VIEWS, StudentInputs, ViewSpec, ViewTargets, ViewsCacheInfo, view_soft_targets,
};
