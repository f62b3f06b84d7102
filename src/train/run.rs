//! The training loop: seeded shuffling, the learning-rate schedule, progress, per-epoch metrics
//! and atomic checkpoints. One loop serves the teacher, the student alone and the distilled
//! student; what differs is the [`Objective`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::early_stop::EarlyStop;
use super::metrics::{EpochMetrics, metrics_path, read_metrics};
use super::overlap::overlapped;
use super::resume;
use super::settings::{RngStream, TrainConfig};
use super::stepper::{Stepper, count_errors};
use crate::data::{ImageShape, Split, index_tensor, jittered_batch, mix_batch};
use crate::distill::{DistillLoss, Objective};
use crate::error::{Error, Result};
use crate::fsutil::{append_line, write_atomic};
use crate::model::{Network, Predictor, clear_complete, finished_run, mark_complete};

/// One prepared batch: its place in the epoch, images, labels and soft targets if any.
struct Batch<'a> {
    step: usize,
    x: Tensor<2>,
    y: Tensor<1, Int>,
    targets: Option<(Tensor<2>, &'a dyn DistillLoss)>,
}

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
    /// With a patience: the epoch kept, the one with the fewest validation errors.
    pub best_epoch: Option<usize>,
}

impl Trained {
    /// The validation errors of the model kept: the best epoch's with a patience, the last
    /// epoch's otherwise; `None` without a validation split.
    pub fn validation_errors(&self) -> Option<usize> {
        let kept = match self.best_epoch {
            Some(e) => self.history.iter().find(|m| m.epoch == e),
            None => self.history.last(),
        };
        kept.and_then(EpochMetrics::validation)
    }

    /// True when this model makes fewer validation errors than `other` (a model without a
    /// validation split counts as the worst): choosing with it keeps the first of equals.
    pub fn beats_on_validation(&self, other: &Trained) -> bool {
        let errors = |t: &Trained| t.validation_errors().unwrap_or(usize::MAX);
        errors(self) < errors(other)
    }
}

/// Where a run writes as it trains.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Model directory: `model.safetensors` (rewritten atomically at each checkpoint and at the
    /// end) and `metrics.jsonl`.
    pub dir: PathBuf,
    /// Label for the progress bar ("teacher", "student", ...).
    pub label: String,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// How the run survives a kill.
    pub checkpoints: Checkpoints,
}

/// How a run survives a kill: what it saves, how often, and whether it continues from what an
/// earlier, interrupted run saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoints {
    /// Continue from the resumable state in the model directory if there is one (else start
    /// afresh, and say so).
    pub resume: bool,
    /// Keep the resumable state when the run finishes (it is removed otherwise).
    pub keep: bool,
    /// Least seconds between two checkpoints: an epoch's end writes one only when this much
    /// time has passed since the last (the last epoch always does). On small data an epoch
    /// takes milliseconds, and writing and syncing the weights every epoch would cost more
    /// than training; 0 checkpoints every epoch.
    pub every_seconds: u64,
}

/// Default of [`Checkpoints::every_seconds`]: a kill loses at most this much work plus one
/// epoch.
pub const CHECKPOINT_SECONDS: u64 = 30;

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints {
            resume: false,
            keep: false,
            every_seconds: CHECKPOINT_SECONDS,
        }
    }
}

impl RunOutput {
    /// A fresh run into `dir`, labelled `label` on its progress bar.
    pub fn new(dir: &Path, label: &str, progress: bool) -> RunOutput {
        RunOutput {
            dir: dir.to_path_buf(),
            label: label.into(),
            progress,
            checkpoints: Checkpoints::default(),
        }
    }
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
    if let Objective::DistillViews { targets, .. } = objective {
        let [rows, cols] = targets.log_probs.dims();
        if rows != n * targets.spec.views || cols != classes || targets.spec.shape != data.shape {
            return Err(Error::Mismatch(format!(
                "cached views hold {rows}x{cols} soft targets of {:?} images, but the transfer \
                 set has {n} examples of {:?} in {} views and the student {classes} classes",
                targets.spec.shape, data.shape, targets.spec.views
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
    // Soft targets stored ahead of time describe unblended images. The commands refuse this
    // pairing before loading anything (`StudentInputs::check`); a library caller that builds
    // the objective itself meets the same refusal here rather than a silently wrong target.
    if s.mixup > 0.0
        && matches!(
            objective,
            Objective::Distill { .. } | Objective::DistillViews { .. }
        )
    {
        return Err(Error::config(
            "mixup blends new images on every batch, which only a live teacher can label: \
             cached soft targets cannot teach a student trained with --mixup",
        ));
    }
    std::fs::create_dir_all(&output.dir)
        .map_err(|e| Error::io("creating directory", &output.dir, e))?;
    let dir = &output.dir;
    let metrics_path = metrics_path(dir);
    let objective_kind = match objective {
        Objective::Hard => "hard labels".to_string(),
        Objective::Distill {
            loss,
            teacher_log_probs,
        } => format!("{} cached {:?}", loss.describe(), teacher_log_probs.dims()),
        Objective::DistillLive { loss, teacher } => {
            format!("{} live {}", loss.describe(), teacher.describe())
        }
        Objective::DistillViews { loss, targets } => format!(
            "{} cached views {:?} {:?}",
            loss.describe(),
            targets.log_probs.dims(),
            targets.spec
        ),
    };
    let run_id = resume::run_identity(&(
        s,
        &network.config,
        data.train.fingerprint(),
        data.validation.fingerprint(),
        objective_kind,
    ));
    // Resuming a run that already finished hands back its model untouched, and removes the
    // resumable state that a kill between marking it finished and removing it left behind.
    if output.checkpoints.resume && finished_run(dir).is_some_and(|r| r == run_id) {
        if !output.checkpoints.keep {
            resume::clear(dir)?;
        }
        let network = Network::load(dir, device)?;
        let history = read_metrics(dir);
        let seconds = history.last().map_or(0.0, |m| m.elapsed_seconds);
        if output.progress {
            eprintln!(
                "{}: already finished in {}; not retrained",
                output.label,
                dir.display()
            );
        }
        let best_epoch = s
            .patience
            .and_then(|p| EarlyStop::new(p, dir, &history).best_epoch());
        return Ok(Trained {
            network,
            history,
            seconds,
            best_epoch,
        });
    }
    clear_complete(dir)?;
    let resumed = if output.checkpoints.resume {
        resume::load(dir, &run_id, device)?
    } else {
        resume::clear(dir)?;
        None
    };
    let (mut stepper, first_epoch, elapsed_before, mut history) = match resumed {
        Some((state, saved)) => {
            let optimizer = resume::ResumeState::optimizer(dir, state.epoch);
            let stepper = Stepper::resume(&saved, config, device, &state.param_ids, &optimizer)?;
            // Epochs after the saved state (a kill between the metrics line and the state)
            // are dropped: they are trained again.
            // The lines are kept as written: parsing and printing floats again could move
            // them by a unit in the last place.
            let text = std::fs::read_to_string(&metrics_path).unwrap_or_default();
            let kept: Vec<&str> = text.lines().take(state.epoch).collect();
            let mut history = read_metrics(dir);
            history.truncate(state.epoch);
            if kept.len() != state.epoch || history.len() != state.epoch {
                return Err(Error::Checkpoint {
                    path: metrics_path.clone(),
                    reason: format!(
                        "holds {} readable epochs, the resumable state {}",
                        history.len(),
                        state.epoch
                    ),
                });
            }
            write_atomic(&metrics_path, (kept.join("\n") + "\n").as_bytes())?;
            if output.progress {
                eprintln!("{}: resuming after epoch {}", output.label, state.epoch);
            }
            (stepper, state.epoch + 1, state.elapsed_seconds, history)
        }
        None => {
            if output.checkpoints.resume && output.progress {
                eprintln!(
                    "{}: nothing to resume in {}; training from the start",
                    output.label,
                    dir.display()
                );
            }
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)
                    .map_err(|e| Error::io("removing", &metrics_path, e))?;
            }
            (Stepper::new(&network, config, device), 1, 0.0, Vec::new())
        }
    };
    let train_dev = data.train.to_device(device);
    let val_dev = data.validation.to_device(device);
    let steps_per_epoch = n.div_ceil(s.batch_size);
    let total_steps = steps_per_epoch * s.epochs;
    let warmup_steps = steps_per_epoch * s.warmup_epochs;
    let bar = progress_bar(output, total_steps as u64);
    let start = Instant::now();
    let elapsed = || elapsed_before + start.elapsed().as_secs_f64();
    let mut order: Vec<usize> = (0..n).collect();
    let mut global = steps_per_epoch * (first_epoch - 1);
    bar.set_position(global as u64);
    let mut lr = s.learning_rate;
    let mut last_checkpoint = Instant::now();
    let mut early = EarlyStop::start(s.patience, data.validation, dir, &history)?;

    for epoch in first_epoch..=s.epochs {
        // Every epoch's order, shifts and dropout masks come from streams seeded for that
        // epoch alone (see `RngStream::epoch_seed`).
        let mut shuffle = StdRng::seed_from_u64(RngStream::Shuffle.epoch_seed(s.seed, epoch));
        let mut jitter = StdRng::seed_from_u64(RngStream::Jitter.epoch_seed(s.seed, epoch));
        let mut mixup = StdRng::seed_from_u64(RngStream::Mixup.epoch_seed(s.seed, epoch));
        stepper.begin_epoch(s.seed, epoch);
        order.sort_unstable();
        order.shuffle(&mut shuffle);
        let mut loss_sum = 0.0f64;
        // The next batch (its images, and a live teacher's soft targets) is made while the
        // current one trains: see `overlapped`.
        let prepare = |(step, chunk): (usize, &[usize])| -> Result<Batch<'_>> {
            let idx = index_tensor(chunk, device);
            let (x, view_targets) = match objective {
                Objective::DistillViews { targets, .. } => {
                    let (x, t) = targets.batch(data.train, chunk, &mut jitter, device);
                    (x, Some(t))
                }
                _ if s.jitter > 0 || s.mixup > 0.0 => {
                    let mut v =
                        jittered_batch(data.train, data.shape, chunk, s.jitter, &mut jitter);
                    if s.mixup > 0.0 {
                        mix_batch(&mut v, data.train.pixels, s.mixup, &mut mixup);
                    }
                    let shape = [chunk.len(), data.train.pixels];
                    (
                        Tensor::<2>::from_data(TensorData::new(v, shape), device),
                        None,
                    )
                }
                _ => (train_dev.images_at(&idx), None),
            };
            let y: Tensor<1, Int> = train_dev.labels_at(&idx);
            let targets = match objective {
                Objective::Hard => None,
                Objective::Distill {
                    loss,
                    teacher_log_probs,
                } => Some((teacher_log_probs.clone().select(0, idx), loss.as_ref())),
                Objective::DistillLive { loss, teacher } => {
                    Some((teacher.log_probs(&x, loss.temperature())?, loss.as_ref()))
                }
                Objective::DistillViews { loss, .. } => view_targets.map(|t| (t, loss.as_ref())),
            };
            Ok(Batch {
                step,
                x,
                y,
                targets,
            })
        };
        let train_step = |b: Batch<'_>| -> Result<()> {
            lr = config.learning_rate(global, total_steps, warmup_steps);
            let soft = b.targets.as_ref().map(|(t, _)| t.clone());
            let value = stepper.step(b.x, b.y, b.targets, lr);
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
                        b.step + 1
                    )));
                }
                return Err(Error::Diverged {
                    value,
                    epoch,
                    step: b.step + 1,
                    global_step: global,
                });
            }
            loss_sum += value as f64;
            bar.inc(1);
            if b.step.is_multiple_of(20) {
                bar.set_message(format!("epoch {epoch}/{} loss {value:.4}", s.epochs));
            }
            Ok(())
        };
        overlapped(order.chunks(s.batch_size).enumerate(), prepare, train_step)?;
        let snapshot = stepper.network(&network.config);
        let validation_errors = count_errors(&snapshot.net, &val_dev);
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / steps_per_epoch as f64,
            validation_errors,
            validation_examples: val_dev.len,
            learning_rate: lr,
            elapsed_seconds: elapsed(),
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
        let stop = match (early.as_mut(), m.validation()) {
            (Some(e), Some(errors)) => e.observe(epoch, errors, &snapshot)?,
            _ => false,
        };
        let due = last_checkpoint.elapsed().as_secs() >= output.checkpoints.every_seconds;
        if due || stop || epoch == s.epochs {
            snapshot.save(dir)?;
            stepper.save_optimizer(&resume::ResumeState::optimizer(dir, epoch))?;
            resume::save_epoch(
                dir,
                &run_id,
                epoch,
                m.elapsed_seconds,
                &snapshot,
                stepper.param_ids(),
            )?;
            last_checkpoint = Instant::now();
        }
        history.push(m);
        if stop {
            bar.println(format!(
                "{:>10} stopped: no fewer validation errors in {} epochs",
                output.label,
                s.patience.unwrap_or(0)
            ));
            break;
        }
    }
    bar.finish_and_clear();
    let best = EarlyStop::keep_best(early.as_ref(), device)?;
    let best_epoch = best.as_ref().map(|(epoch, _)| *epoch);
    // Finished first, then the resumable state goes: a kill in between leaves a finished
    // model that `--resume` keeps.
    mark_complete(dir, Some(&run_id))?;
    if !output.checkpoints.keep {
        resume::clear(dir)?;
    }
    Ok(Trained {
        network: match best {
            Some((_, net)) => net,
            None => stepper.network(&network.config),
        },
        history,
        seconds: elapsed(),
        best_epoch,
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
