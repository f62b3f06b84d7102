//! The training loop: optimizer, learning-rate schedule, seeded shuffling, progress, per-epoch
//! metrics and atomic checkpoints.
//!
//! One loop serves the teacher, the student alone and the distilled student; what differs is
//! the [`Objective`]. Validation errors are measured on a split held out of the training data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{DeviceSplit, Split, index_tensor, jittered_batch};
use crate::distill::{DistillConfig, distillation_loss, hard_loss};
use crate::error::{Error, Result};
use crate::fsutil::append_line;
use crate::model::{Classifier, Mlp, Network, Predictor};

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
pub struct TrainSettings {
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
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Checked training hyperparameters; only [`TrainSettings::check`] makes one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    settings: TrainSettings,
}

impl TrainSettings {
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
        // `epochs` is at least 1 here, so this never refuses a warm-up of 0.
        if self.warmup_epochs >= self.epochs {
            return Err(Error::config(format!(
                "warm-up of {} epochs leaves nothing of the {} training epochs",
                self.warmup_epochs, self.epochs
            )));
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
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    fn optimizer(&self) -> ModuleOptimizer {
        match self.settings.optimizer {
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum(Some(
                    MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
                ))
                .init(),
            OptimizerKind::Adam => AdamConfig::new().init(),
        }
    }

    /// The rate at 0-based `step` of `total`, where the first `warmup` steps ramp up linearly
    /// and the schedule spans the rest.
    fn learning_rate(&self, step: usize, total: usize, warmup: usize) -> f64 {
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

/// What the student learns from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per run, never stored in bulk
pub enum Objective {
    /// Cross-entropy against the true labels.
    Hard,
    /// The distillation loss against teacher log-probabilities at T, one row per transfer example.
    Distill {
        /// Temperature and alpha.
        config: DistillConfig,
        /// `[transfer examples, classes]` teacher log-probabilities at T.
        teacher_log_probs: Tensor<2>,
    },
    /// The distillation loss against a teacher run on every batch as the student sees it:
    /// needed when the student's inputs are jittered, since cached soft targets describe only
    /// the unshifted images.
    DistillLive {
        /// Temperature and alpha.
        config: DistillConfig,
        /// The teacher (a network or an ensemble), in inference mode.
        teacher: Classifier,
    },
}

/// The data a run trains and validates on.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Transfer / training examples.
    pub train: &'a Split,
    /// Held-out validation examples.
    pub validation: &'a Split,
    /// Image height and width (for jitter).
    pub image: [usize; 2],
}

/// Metrics of one epoch, one line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Errors on the validation split (0 when there is none).
    pub validation_errors: usize,
    /// Size of the validation split (0 when the run fits all training examples).
    pub validation_examples: usize,
    /// Learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Wall-clock seconds since training started.
    pub elapsed_seconds: f64,
}

impl EpochMetrics {
    /// Validation errors, or `None` when the run held out no validation split (it then
    /// records 0 of 0).
    pub fn validation(&self) -> Option<usize> {
        (self.validation_examples > 0).then_some(self.validation_errors)
    }
}

/// A finished training run.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The trained network (plain, inference-ready).
    pub network: Network,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Wall-clock training time in seconds (validation included).
    pub seconds: f64,
}

/// Where a run writes as it trains.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Model directory: `model.safetensors` (rewritten atomically after every epoch) and
    /// `metrics.jsonl`.
    pub dir: PathBuf,
    /// Label for the progress bar ("teacher", "student", ...).
    pub label: String,
    /// Whether to draw a progress bar.
    pub progress: bool,
}

/// One optimization step at a time on an autodiff copy of a network: the inner loop of
/// [`train`], also timed by the benchmarks.
pub struct Stepper {
    // Always Some between calls; taken during an update so the optimizer owns the only
    // reference to the weights and can update them in place.
    mlp: Option<Mlp>,
    optim: ModuleOptimizer,
}

impl Stepper {
    /// Prepares `network` for training on `device` (autodiff is enabled on it), seeding the
    /// device's random numbers (dropout) with the config's seed.
    pub fn new(network: &Network, config: &TrainConfig, device: &Device) -> Stepper {
        let ad = device.clone().autodiff();
        ad.seed(config.settings().seed);
        Stepper {
            mlp: Some(network.mlp.clone().fork(&ad).train()),
            optim: config.optimizer(),
        }
    }

    /// One step on a batch: hard-label cross-entropy, or the distillation loss when `soft`
    /// holds the teacher's log-probabilities at T for the batch. Returns the loss before the
    /// update (NaN or infinite if training diverged; the update is then skipped).
    pub fn step(
        &mut self,
        x: Tensor<2>,
        y: Tensor<1, Int>,
        soft: Option<(Tensor<2>, &DistillConfig)>,
        lr: f64,
    ) -> f32 {
        let mlp = self
            .mlp
            .take()
            .expect("stepper holds its network between steps");
        let logits = mlp.forward(x.autodiff());
        let loss = match soft {
            None => hard_loss(logits, y.autodiff()),
            Some((targets, config)) => {
                distillation_loss(logits, targets.autodiff(), y.autodiff(), config)
            }
        };
        let value = loss.clone().into_scalar::<f32>();
        self.mlp = Some(if value.is_finite() {
            let grads = GradientsParams::from_grads(loss.backward(), &mlp);
            self.optim.step(lr, mlp, grads)
        } else {
            mlp
        });
        value
    }

    /// The network being trained, as a plain (inference) copy.
    pub fn network(&self, config: &crate::model::MlpConfig) -> Network {
        Network {
            config: config.clone(),
            mlp: self
                .mlp
                .as_ref()
                .expect("stepper holds its network between steps")
                .valid(),
        }
    }
}

/// Counts classification errors of `mlp` on a device split.
pub fn count_errors(mlp: &Mlp, split: &DeviceSplit) -> usize {
    if split.len == 0 {
        return 0;
    }
    let pred = mlp
        .logits_chunked(&split.images, 2048)
        .argmax(1)
        .flatten::<1>(0, 1);
    let wrong = pred.not_equal(split.labels.clone()).int().sum();
    wrong.into_scalar::<i64>() as usize
}

/// Trains `network` (freshly initialized or not) on `data` towards `objective`.
///
/// `device` is the plain compute device; autodiff is enabled on it for the duration of training.
pub fn train(
    network: Network,
    data: TrainData<'_>,
    objective: &Objective,
    config: &TrainConfig,
    device: &Device,
    output: &RunOutput,
) -> Result<Trained> {
    let s = config.settings();
    let n = data.train.len();
    if n == 0 {
        return Err(Error::config("the training (transfer) set is empty"));
    }
    if data.train.pixels != network.config.inputs {
        return Err(Error::Mismatch(format!(
            "images have {} pixels but the model expects {} inputs",
            data.train.pixels, network.config.inputs
        )));
    }
    if let Objective::Distill {
        teacher_log_probs, ..
    } = objective
    {
        let [rows, classes] = teacher_log_probs.dims();
        if rows != n || classes != network.config.classes {
            return Err(Error::Mismatch(format!(
                "teacher soft targets are {rows}x{classes} but the transfer set has {n} examples \
                 and the student {} classes",
                network.config.classes
            )));
        }
    }
    if let Objective::DistillLive { teacher, .. } = objective
        && (teacher.classes() != network.config.classes || teacher.inputs() != data.train.pixels)
    {
        return Err(Error::Mismatch(format!(
            "the teacher maps {} inputs to {} classes but the student {} inputs to {} classes",
            teacher.inputs(),
            teacher.classes(),
            network.config.inputs,
            network.config.classes
        )));
    }
    std::fs::create_dir_all(&output.dir)
        .map_err(|e| Error::io("creating directory", &output.dir, e))?;
    let metrics_path = output.dir.join("metrics.jsonl");
    if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|e| Error::io("removing", &metrics_path, e))?;
    }

    let mut stepper = Stepper::new(&network, config, device);
    let train_dev = data.train.to_device(device);
    let val_dev = data.validation.to_device(device);
    let mut rng = StdRng::seed_from_u64(s.seed);
    let steps_per_epoch = n.div_ceil(s.batch_size);
    let total_steps = steps_per_epoch * s.epochs;
    let warmup_steps = steps_per_epoch * s.warmup_epochs;
    let bar = progress_bar(output, total_steps as u64);
    let start = Instant::now();
    let mut history = Vec::with_capacity(s.epochs);
    let mut order: Vec<usize> = (0..n).collect();
    let mut global = 0usize;
    let mut lr = s.learning_rate;

    for epoch in 1..=s.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for (step, chunk) in order.chunks(s.batch_size).enumerate() {
            lr = config.learning_rate(global, total_steps, warmup_steps);
            let idx = index_tensor(chunk, device);
            let x = if s.jitter > 0 {
                let v = jittered_batch(
                    data.train,
                    data.image[0],
                    data.image[1],
                    chunk,
                    s.jitter,
                    &mut rng,
                );
                Tensor::<2>::from_data(TensorData::new(v, [chunk.len(), data.train.pixels]), device)
            } else {
                train_dev.images_at(&idx)
            };
            let y: Tensor<1, Int> = train_dev.labels_at(&idx);
            let targets = match objective {
                Objective::Hard => None,
                Objective::Distill {
                    config,
                    teacher_log_probs,
                } => Some((teacher_log_probs.clone().select(0, idx), config)),
                Objective::DistillLive { config, teacher } => {
                    Some((teacher.log_probs(&x, config.temperature()), config))
                }
            };
            let value = stepper.step(x, y, targets, lr);
            global += 1;
            if !value.is_finite() {
                bar.abandon();
                return Err(Error::Diverged {
                    value,
                    epoch,
                    step: step + 1,
                    global_step: global,
                });
            }
            loss_sum += value as f64;
            bar.inc(1);
            if step % 20 == 0 {
                bar.set_message(format!("epoch {epoch}/{} loss {value:.4}", s.epochs));
            }
        }
        let snapshot = stepper.network(&network.config);
        let validation_errors = count_errors(&snapshot.mlp, &val_dev);
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / steps_per_epoch as f64,
            validation_errors,
            validation_examples: val_dev.len,
            learning_rate: lr,
            elapsed_seconds: start.elapsed().as_secs_f64(),
        };
        let validation = match m.validation() {
            Some(errors) => format!("validation errors {errors}/{}", m.validation_examples),
            None => "no validation split".to_string(),
        };
        bar.println(format!(
            "{:>10} epoch {epoch:>3}/{}  loss {:.4}  {validation}",
            output.label, s.epochs, m.train_loss
        ));
        append_line(
            &metrics_path,
            &serde_json::to_string(&m).expect("metrics serialize"),
        )?;
        snapshot.save(&output.dir)?;
        history.push(m);
    }
    bar.finish_and_clear();
    Ok(Trained {
        network: stepper.network(&network.config),
        history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn progress_bar(output: &RunOutput, total: u64) -> ProgressBar {
    if !output.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{:>10} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} steps  {{msg}}  (eta {{eta}})",
            output.label
        ))
        .expect("valid template"),
    );
    bar
}

/// Path of a model directory's metrics file.
pub fn metrics_path(dir: &Path) -> PathBuf {
    dir.join("metrics.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(epochs: usize, warmup_epochs: usize, schedule: Schedule) -> TrainSettings {
        TrainSettings {
            epochs,
            batch_size: 10,
            learning_rate: 0.1,
            optimizer: OptimizerKind::Sgd,
            schedule,
            warmup_epochs,
            jitter: 0,
            seed: 1,
        }
    }

    #[test]
    fn epochs_without_a_validation_split_report_none() {
        let m = |errors, examples| EpochMetrics {
            epoch: 1,
            train_loss: 0.5,
            validation_errors: errors,
            validation_examples: examples,
            learning_rate: 0.1,
            elapsed_seconds: 1.0,
        };
        assert_eq!(m(0, 0).validation(), None);
        assert_eq!(m(0, 100).validation(), Some(0));
        assert_eq!(m(7, 100).validation(), Some(7));
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
    fn warmup_must_leave_epochs_for_the_schedule() {
        let err = settings(3, 3, Schedule::Cosine).check().unwrap_err();
        assert!(err.to_string().contains("warm-up of 3 epochs"), "{err}");
        assert!(settings(3, 2, Schedule::Cosine).check().is_ok());
    }
}
