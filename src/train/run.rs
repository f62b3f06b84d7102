//! The training loop: seeded shuffling, the learning-rate schedule, progress, per-epoch metrics
//! and atomic checkpoints. One loop serves the teacher, the student alone and the distilled
//! student; what differs is the [`Objective`].

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::metrics::{EpochMetrics, metrics_path};
use super::settings::{RngStream, TrainConfig};
use super::stepper::{Stepper, count_errors};
use crate::data::{ImageShape, Split, index_tensor, jittered_batch};
use crate::distill::Objective;
use crate::error::{Error, Result};
use crate::fsutil::append_line;
use crate::model::{Network, Predictor, clear_complete, mark_complete};

/// The data a run trains and validates on.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Transfer / training examples.
    pub train: &'a Split,
    /// Held-out validation examples.
    pub validation: &'a Split,
    /// Shape of the images (for jitter).
    pub shape: ImageShape,
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
    let classes = network.config.classes();
    if data.train.pixels != network.config.inputs() {
        return Err(Error::Mismatch(format!(
            "images have {} values each but the model expects {} inputs",
            data.train.pixels,
            network.config.inputs()
        )));
    }
    if let Objective::Distill {
        teacher_log_probs, ..
    } = objective
    {
        let [rows, cols] = teacher_log_probs.dims();
        if rows != n || cols != classes {
            return Err(Error::Mismatch(format!(
                "teacher soft targets are {rows}x{cols} but the transfer set has {n} examples \
                 and the student {classes} classes"
            )));
        }
    }
    if let Objective::DistillLive { teacher, .. } = objective
        && (teacher.classes() != classes || teacher.inputs() != data.train.pixels)
    {
        return Err(Error::Mismatch(format!(
            "the teacher maps {} inputs to {} classes but the student {} inputs to {classes} classes",
            teacher.inputs(),
            teacher.classes(),
            network.config.inputs()
        )));
    }
    std::fs::create_dir_all(&output.dir)
        .map_err(|e| Error::io("creating directory", &output.dir, e))?;
    clear_complete(&output.dir)?;
    let metrics_path = metrics_path(&output.dir);
    if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|e| Error::io("removing", &metrics_path, e))?;
    }

    let mut stepper = Stepper::new(&network, config, device);
    let train_dev = data.train.to_device(device);
    let val_dev = data.validation.to_device(device);
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
        // Every epoch's order, shifts and dropout masks come from streams seeded for that
        // epoch alone (see `RngStream::epoch_seed`).
        let mut shuffle = StdRng::seed_from_u64(RngStream::Shuffle.epoch_seed(s.seed, epoch));
        let mut jitter = StdRng::seed_from_u64(RngStream::Jitter.epoch_seed(s.seed, epoch));
        stepper.begin_epoch(s.seed, epoch);
        order.sort_unstable();
        order.shuffle(&mut shuffle);
        let mut loss_sum = 0.0f64;
        for (step, chunk) in order.chunks(s.batch_size).enumerate() {
            lr = config.learning_rate(global, total_steps, warmup_steps);
            let idx = index_tensor(chunk, device);
            let x = if s.jitter > 0 {
                let v = jittered_batch(data.train, data.shape, chunk, s.jitter, &mut jitter);
                Tensor::<2>::from_data(TensorData::new(v, [chunk.len(), data.train.pixels]), device)
            } else {
                train_dev.images_at(&idx)
            };
            let y: Tensor<1, Int> = train_dev.labels_at(&idx);
            let targets = match objective {
                Objective::Hard => None,
                Objective::Distill {
                    loss,
                    teacher_log_probs,
                } => Some((teacher_log_probs.clone().select(0, idx), loss.as_ref())),
                Objective::DistillLive { loss, teacher } => {
                    Some((teacher.log_probs(&x, loss.temperature()), loss.as_ref()))
                }
            };
            let soft = targets.as_ref().map(|(t, _)| t.clone());
            let value = stepper.step(x, y, targets, lr);
            global += 1;
            if !value.is_finite() {
                bar.abandon();
                // A teacher that hands over -inf or NaN is the cause, not the learning rate.
                if let Some(t) = soft
                    && t.clone().is_nan().any().into_scalar::<bool>()
                        | t.is_inf().any().into_scalar::<bool>()
                {
                    return Err(Error::NonFinite(format!(
                        "the teacher's soft targets at epoch {epoch}, step {} (NaN or infinite \
                         log-probabilities; training stopped before they reached the student)",
                        step + 1
                    )));
                }
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
        let validation_errors = count_errors(&snapshot.net, &val_dev);
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
    mark_complete(&output.dir)?;
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
