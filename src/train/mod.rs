//! Stage 5, train: the optimization loop and everything it needs: checked hyperparameters, the
//! optimizer step, per-epoch metrics, checkpoints, and training one model of a recipe.
//!
//! Owns: how a network is fitted, whatever it learns from.
//! May use: `compute`, `data`, `model`, `distill` and the foundation modules.
//! Validation errors are measured on a split held out of the training data, never the test set.

mod early_stop;
mod metrics;
mod momentum;
mod overlap;
pub mod resume;
mod role;
mod run;
mod settings;
mod start;
mod stepper;

pub use early_stop::BEST_FILE;
pub use metrics::{EpochMetrics, earlier_training, metrics_path, read_metrics};
pub use momentum::MomentumSgd;
pub use overlap::overlapped;
pub use role::{RoleConfig, RoleParams, train_role};
pub use run::{CHECKPOINT_SECONDS, Checkpoints, RunOutput, TrainData, Trained, train};
pub use settings::{OptimizerKind, RngStream, Schedule, TrainConfig, TrainParams};
pub use stepper::{Stepper, count_errors};
