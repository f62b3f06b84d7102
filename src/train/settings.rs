//! Training hyperparameters as a user gives them, checked: optimizer, learning rate and its
//! schedule (with warm-up), batch size, jitter, seed.

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use super::momentum::MomentumSgd;
use crate::error::{Error, Result, Setting};

/// The momentum of SGD, as in the paper's era and every peer's default recipe.
const MOMENTUM: f32 = 0.9;

/// Which optimizer to use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum 0.9 (no dampening, as in PyTorch).
    Sgd,
    /// Adam with default betas.
    Adam,
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from the initial rate to zero over all steps.
    Cosine,
}

/// Training hyperparameters as a user gives them (unchecked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Epochs over which the rate first climbs linearly from near zero to its initial value,
    /// before the schedule starts (0 = none). Left out of configs when 0, so that configs and
    /// reuse stamps written before warm-up existed still match.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_epochs: usize,
    /// Maximum random shift of input images in pixels (0 = no jitter).
    pub jitter: usize,
    /// Seed for initialization, shuffling, dropout and jitter.
    pub seed: u64,
    /// Largest L2 norm of each parameter's gradient; larger ones are scaled down before the
    /// step. `None` until the role's architecture picks its default (see
    /// [`ModelSpec::default_clip_norm`](crate::model::ModelSpec::default_clip_norm)); 0 turns
    /// clipping off. Left out of configs when unset, so older configs and stamps still match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Mixup's Beta parameter (0 = off): each training image is blended with another of its
    /// batch (see [`mix_batch`](crate::data::mix_batch)). Left out of configs when 0, so older
    /// configs and stamps still match.
    #[serde(default, skip_serializing_if = "is_off")]
    pub mixup: f64,
    /// Keep the epoch with the fewest validation errors and stop after this many epochs
    /// without fewer (`None`: train every epoch and keep the last). Left out of configs when
    /// unset, so older configs and stamps still match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_off(x: &f64) -> bool {
    *x == 0.0
}

/// The random streams of a run. Each draws from its own seed, derived from the run's seed and
/// the stream's name, so that changing how much one stream draws (turning on jitter, changing
/// the dropout rate) leaves the others, and so the rest of the run, as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RngStream {
    /// Weight initialization.
    Init,
    /// The order of examples in each epoch.
    Shuffle,
    /// Dropout masks.
    Dropout,
    /// Jitter shifts.
    Jitter,
    /// Mixup partners and weights.
    Mixup,
}

impl RngStream {
    /// The seed of this stream for a run seeded with `seed` (splitmix64 of the two).
    pub fn seed(self, seed: u64) -> u64 {
        let tag: u64 = match self {
            RngStream::Init => 0x1a17,
            RngStream::Shuffle => 0x5bff,
            RngStream::Dropout => 0xd20f,
            RngStream::Jitter => 0x717e,
            RngStream::Mixup => 0x3a1c,
        };
        splitmix64(seed ^ tag.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The seed of this stream for one epoch (1-based) of a run seeded with `seed`. Every epoch
    /// starts its streams afresh, so a run resumed at an epoch boundary draws exactly what the
    /// uninterrupted run drew, without replaying the epochs before it.
    pub fn epoch_seed(self, seed: u64, epoch: usize) -> u64 {
        splitmix64(self.seed(seed) ^ (epoch as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
    }
}

/// One round of splitmix64: a well-mixed 64-bit value from any 64-bit input.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Checked training hyperparameters; only [`TrainParams::check`] makes one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    settings: TrainParams,
}

impl TrainParams {
    /// Validates every field.
    pub fn check(self) -> Result<TrainConfig> {
        if self.epochs == 0 {
            return Err(Error::config("epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch size must be at least 1"));
        }
        if !self.learning_rate.is_finite() || self.learning_rate <= 0.0 {
            return Err(Error::config(format!(
                "learning rate must be a finite number above 0, got {}",
                self.learning_rate
            )));
        }
        if let Some(c) = self.clip_norm
            && !(c.is_finite() && c >= 0.0)
        {
            return Err(Error::config(format!(
                "gradient clipping norm must be a finite number of at least 0, got {c}"
            )));
        }
        // `epochs` is at least 1 here, so this never refuses a warm-up of 0.
        if self.warmup_epochs >= self.epochs {
            return Err(Error::config(format!(
                "warm-up of {} epochs leaves nothing of the {} training epochs",
                self.warmup_epochs, self.epochs
            )));
        }
        if !(self.mixup.is_finite() && (0.0..=100.0).contains(&self.mixup)) {
            return Err(Error::setting(
                Setting::Mixup,
                format!(
                    "must be 0 (off) or a Beta parameter above 0 and at most 100, got {}",
                    self.mixup
                ),
            ));
        }
        if self.patience == Some(0) {
            return Err(Error::config(
                "a patience of 0 epochs would stop after the first; give at least 1",
            ));
        }
        if self.jitter > 8 {
            return Err(Error::config(format!(
                "jitter of {} pixels is over the limit of 8",
                self.jitter
            )));
        }
        Ok(TrainConfig { settings: self })
    }
}

impl TrainConfig {
    /// The checked settings.
    pub fn settings(&self) -> &TrainParams {
        &self.settings
    }

    fn clipping(&self) -> Option<GradientClippingConfig> {
        self.settings
            .clip_norm
            .filter(|&c| c > 0.0)
            .map(|c| GradientClippingConfig::Norm(c as f32))
    }

    pub(crate) fn optimizer(&self) -> ModuleOptimizer {
        match self.settings.optimizer {
            // The one-pass update works on the weights in host memory; on a GPU, burn's
            // update (the same arithmetic) runs where the weights live.
            OptimizerKind::Sgd if cfg!(feature = "cuda") => MomentumSgd::burn_equivalent(MOMENTUM)
                .with_gradient_clipping(self.clipping())
                .init(),
            OptimizerKind::Sgd => {
                let sgd = ModuleOptimizer::from(MomentumSgd::new(MOMENTUM));
                match self.clipping() {
                    Some(clip) => sgd.with_grad_clipping(clip.init()),
                    None => sgd,
                }
            }
            OptimizerKind::Adam => AdamConfig::new().with_grad_clipping(self.clipping()).init(),
        }
    }

    /// The rate at 0-based `step` of `total`, where the first `warmup` steps ramp up linearly
    /// and the schedule spans the rest.
    pub(crate) fn learning_rate(&self, step: usize, total: usize, warmup: usize) -> f64 {
        let lr = self.settings.learning_rate;
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        match self.settings.schedule {
            Schedule::Constant => lr,
            Schedule::Cosine => {
                let progress = (step - warmup) as f64 / (total - warmup) as f64;
                lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(epochs: usize, warmup_epochs: usize, schedule: Schedule) -> TrainParams {
        TrainParams {
            epochs,
            batch_size: 10,
            learning_rate: 0.1,
            optimizer: OptimizerKind::Sgd,
            schedule,
            warmup_epochs,
            jitter: 0,
            seed: 1,
            clip_norm: None,
            mixup: 0.0,
            patience: None,
        }
    }

    #[test]
    fn warmup_ramps_linearly_then_the_schedule_spans_the_rest() {
        let c = settings(4, 1, Schedule::Cosine).check().unwrap();
        // 10 steps an epoch: 10 warm-up steps, then cosine over the remaining 30.
        let lr = |step| c.learning_rate(step, 40, 10);
        assert!((lr(0) - 0.01).abs() < 1e-12);
        assert!((lr(4) - 0.05).abs() < 1e-12);
        assert!((lr(9) - 0.1).abs() < 1e-12);
        assert!((lr(10) - 0.1).abs() < 1e-12);
        assert!((lr(25) - 0.05).abs() < 1e-12);
        assert!(lr(39) < 0.001);
        let flat = settings(4, 2, Schedule::Constant).check().unwrap();
        assert!((flat.learning_rate(5, 40, 20) - 0.03).abs() < 1e-12);
        assert!((flat.learning_rate(30, 40, 20) - 0.1).abs() < 1e-12);
        // Without warm-up the cosine starts at the full rate.
        let plain = settings(4, 0, Schedule::Cosine).check().unwrap();
        assert!((plain.learning_rate(0, 40, 0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn every_stream_has_its_own_stable_seed() {
        let streams = [
            RngStream::Init,
            RngStream::Shuffle,
            RngStream::Dropout,
            RngStream::Jitter,
            RngStream::Mixup,
        ];
        for seed in [0u64, 1, 2, 1029] {
            let seeds: Vec<u64> = streams.iter().map(|s| s.seed(seed)).collect();
            for (i, a) in seeds.iter().enumerate() {
                assert!(seeds[i + 1..].iter().all(|b| b != a), "{seeds:?}");
                assert_ne!(*a, seed);
            }
        }
        assert_ne!(RngStream::Init.seed(1), RngStream::Init.seed(2));
        // Epochs of one stream differ from each other and from the stream's own seed.
        let epochs: Vec<u64> = (1..=5)
            .map(|e| RngStream::Shuffle.epoch_seed(7, e))
            .collect();
        for (i, a) in epochs.iter().enumerate() {
            assert!(epochs[i + 1..].iter().all(|b| b != a), "{epochs:?}");
            assert_ne!(*a, RngStream::Shuffle.seed(7));
        }
    }

    #[test]
    fn warmup_must_leave_epochs_for_the_schedule() {
        let err = settings(3, 3, Schedule::Cosine).check().unwrap_err();
        assert!(err.to_string().contains("warm-up of 3 epochs"), "{err}");
        assert!(settings(3, 2, Schedule::Cosine).check().is_ok());
    }

    #[test]
    fn mixup_is_off_or_a_beta_parameter_and_absent_from_configs_when_off() {
        let with = |mixup| TrainParams {
            mixup,
            ..settings(3, 0, Schedule::Cosine)
        };
        for bad in [-0.1, f64::NAN, f64::INFINITY, 101.0] {
            let err = with(bad).check().unwrap_err();
            assert!(err.to_string().contains("mixup must be 0"), "{err}");
        }
        assert!(with(0.0).check().is_ok() && with(0.4).check().is_ok());
        let off = toml::to_string(&with(0.0)).unwrap();
        assert!(!off.contains("mixup"), "{off}");
        let on: TrainParams = toml::from_str(&toml::to_string(&with(0.4)).unwrap()).unwrap();
        assert_eq!(on.mixup, 0.4);
    }
}
