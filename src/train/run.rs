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
use super::metrics::{EpochMetrics, metrics_path};
use super::overlap::overlapped;
use super::resume;
use super::settings::{RngStream, TrainConfig, TrainParams};
use super::start::{Start, already_finished};
use super::stepper::{Stepper, count_errors};
use crate::data::{DeviceSplit, ImageShape, Split, index_tensor, jittered_batch, mix_batch};
use crate::distill::{DistillLoss, Objective};
use crate::error::{Error, Result};
use crate::fsutil::append_line;
use crate::model::{Network, clear_complete, finished_run, mark_complete};

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
    /// A time budget: training stops after the epoch in which this moment passes, keeping the
    /// model early stopping would keep (its best epoch) or else the last. A run cut short by
    /// the clock depends on the machine's speed, so its report says where it stopped.
    pub deadline: Option<Instant>,
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
            deadline: None,
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
    check_fits(&network, data, objective, s)?;
    std::fs::create_dir_all(&output.dir)
        .map_err(|e| Error::io("creating directory", &output.dir, e))?;
    let run_id = resume::run_identity(&(
        s,
        &network.config,
        data.train.fingerprint(),
        data.validation.fingerprint(),
        objective.kind(),
    ));
    if output.checkpoints.resume && finished_run(&output.dir).is_some_and(|r| r == run_id) {
        return already_finished(output, s.patience, device);
    }
    clear_complete(&output.dir)?;
    let start = Start::new(&network, config, device, output, &run_id)?;
    let first_epoch = start.first_epoch;
    let mut run = Epochs::new(
        &network, data, objective, config, device, output, &run_id, start,
    )?;
    for epoch in first_epoch..=s.epochs {
        if run.epoch(epoch)? {
            break;
        }
    }
    run.finish()
}

/// Refuses data that does not fit the network, or an objective that fits neither.
fn check_fits(
    network: &Network,
    data: TrainData<'_>,
    objective: &Objective,
    s: &TrainParams,
) -> Result<()> {
    if data.train.is_empty() {
        return Err(Error::config("the training (transfer) set is empty"));
    }
    if data.train.pixels != network.config.inputs() {
        return Err(Error::Mismatch(format!(
            "images have {} values each but the model expects {} inputs",
            data.train.pixels,
            network.config.inputs()
        )));
    }
    objective.check_fits(data.train, data.shape, network.config.classes(), s.mixup)
}

/// Makes each batch: its inputs (shifted, blended or drawn from cached views as the run asks)
/// and its soft targets.
struct Batches<'a> {
    data: TrainData<'a>,
    objective: &'a Objective,
    settings: &'a TrainParams,
    train_dev: DeviceSplit,
    device: &'a Device,
}

impl<'a> Batches<'a> {
    fn prepare(
        &self,
        step: usize,
        chunk: &[usize],
        jitter: &mut StdRng,
        mixup: &mut StdRng,
    ) -> Result<Batch<'a>> {
        let (s, data, device) = (self.settings, self.data, self.device);
        let idx = index_tensor(chunk, device);
        let (x, view_targets) = match self.objective.views() {
            Some(targets) => {
                let (x, t) = targets.batch(data.train, chunk, jitter, device);
                (x, Some(t))
            }
            None if s.jitter > 0 || s.mixup > 0.0 => {
                let mut v = jittered_batch(data.train, data.shape, chunk, s.jitter, jitter);
                if s.mixup > 0.0 {
                    mix_batch(&mut v, data.train.pixels, s.mixup, mixup);
                }
                let shape = [chunk.len(), data.train.pixels];
                (
                    Tensor::<2>::from_data(TensorData::new(v, shape), device),
                    None,
                )
            }
            None => (self.train_dev.images_at(&idx), None),
        };
        let y: Tensor<1, Int> = self.train_dev.labels_at(&idx);
        let targets = self.objective.batch_targets(idx, &x, view_targets)?;
        Ok(Batch {
            step,
            x,
            y,
            targets,
        })
    }
}

/// A run's epochs in progress: what they share and what they carry from one to the next.
struct Epochs<'a> {
    network: &'a Network,
    config: &'a TrainConfig,
    settings: &'a TrainParams,
    device: &'a Device,
    output: &'a RunOutput,
    run_id: &'a str,
    batches: Batches<'a>,
    val_dev: DeviceSplit,
    stepper: Stepper,
    history: Vec<EpochMetrics>,
    early: Option<EarlyStop>,
    steps_per_epoch: usize,
    total_steps: usize,
    warmup_steps: usize,
    bar: ProgressBar,
    start: Instant,
    elapsed_before: f64,
    order: Vec<usize>,
    global: usize,
    lr: f64,
    last_checkpoint: Instant,
}

impl<'a> Epochs<'a> {
    #[allow(clippy::too_many_arguments)] // the arguments of `train`, passed on
    fn new(
        network: &'a Network,
        data: TrainData<'a>,
        objective: &'a Objective,
        config: &'a TrainConfig,
        device: &'a Device,
        output: &'a RunOutput,
        run_id: &'a str,
        start: Start,
    ) -> Result<Epochs<'a>> {
        let s = config.settings();
        let n = data.train.len();
        let batches = Batches {
            data,
            objective,
            settings: s,
            train_dev: data.train.to_device(device),
            device,
        };
        let val_dev = data.validation.to_device(device);
        let steps_per_epoch = n.div_ceil(s.batch_size);
        let total_steps = steps_per_epoch * s.epochs;
        let bar = progress_bar(output, total_steps as u64);
        let global = steps_per_epoch * (start.first_epoch - 1);
        bar.set_position(global as u64);
        let early = EarlyStop::start(s.patience, data.validation, &output.dir, &start.history)?;
        Ok(Epochs {
            network,
            config,
            settings: s,
            device,
            output,
            run_id,
            batches,
            val_dev,
            stepper: start.stepper,
            history: start.history,
            early,
            steps_per_epoch,
            total_steps,
            warmup_steps: steps_per_epoch * s.warmup_epochs,
            bar,
            start: Instant::now(),
            elapsed_before: start.elapsed_before,
            order: (0..n).collect(),
            global,
            lr: s.learning_rate,
            last_checkpoint: Instant::now(),
        })
    }

    /// Seconds trained, the interrupted run's included.
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    /// Trains, records and (when due) checkpoints one epoch; true when early stopping ends the
    /// run.
    fn epoch(&mut self, epoch: usize) -> Result<bool> {
        let s = self.settings;
        let loss_sum = self.train_epoch(epoch)?;
        let snapshot = self.stepper.network(&self.network.config);
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / self.steps_per_epoch as f64,
            validation_errors: count_errors(&snapshot.net, &self.val_dev),
            validation_examples: self.val_dev.len,
            learning_rate: self.lr,
            elapsed_seconds: self.elapsed(),
        };
        self.record(epoch, &m)?;
        let early_stop = match (self.early.as_mut(), m.validation()) {
            (Some(e), Some(errors)) => e.observe(epoch, errors, &snapshot)?,
            _ => false,
        };
        let out_of_time =
            epoch < s.epochs && self.output.deadline.is_some_and(|d| Instant::now() >= d);
        let stop = early_stop || out_of_time;
        let due = self.last_checkpoint.elapsed().as_secs() >= self.output.checkpoints.every_seconds;
        if due || stop || epoch == s.epochs {
            self.checkpoint(epoch, m.elapsed_seconds, &snapshot)?;
        }
        self.history.push(m);
        if early_stop {
            self.bar.println(format!(
                "{:>10} stopped: no fewer validation errors in {} epochs",
                self.output.label,
                s.patience.unwrap_or(0)
            ));
        } else if out_of_time {
            self.bar.println(format!(
                "{:>10} stopped after epoch {epoch} of {}: the time budget ran out",
                self.output.label, s.epochs
            ));
        }
        Ok(stop)
    }

    /// Runs the optimizer over one epoch's batches; the sum of their losses.
    fn train_epoch(&mut self, epoch: usize) -> Result<f64> {
        let s = self.settings;
        // Every epoch's order, shifts and dropout masks come from streams seeded for that
        // epoch alone (see `RngStream::epoch_seed`).
        let mut shuffle = StdRng::seed_from_u64(RngStream::Shuffle.epoch_seed(s.seed, epoch));
        let mut jitter = StdRng::seed_from_u64(RngStream::Jitter.epoch_seed(s.seed, epoch));
        let mut mixup = StdRng::seed_from_u64(RngStream::Mixup.epoch_seed(s.seed, epoch));
        self.stepper.begin_epoch(s.seed, epoch);
        self.order.sort_unstable();
        self.order.shuffle(&mut shuffle);
        let mut loss_sum = 0.0f64;
        let Epochs {
            config,
            batches,
            stepper,
            bar,
            order,
            global,
            lr,
            total_steps,
            warmup_steps,
            ..
        } = self;
        // The next batch (its images, and a live teacher's soft targets) is made while the
        // current one trains: see `overlapped`.
        let prepare = |(step, chunk): (usize, &[usize])| {
            batches.prepare(step, chunk, &mut jitter, &mut mixup)
        };
        let train_step = |b: Batch<'_>| -> Result<()> {
            *lr = config.learning_rate(*global, *total_steps, *warmup_steps);
            let soft = b.targets.as_ref().map(|(t, _)| t.clone());
            let value = stepper.step(b.x, b.y, b.targets, *lr);
            *global += 1;
            if !value.is_finite() {
                bar.abandon();
                return Err(not_finite(value, soft, epoch, b.step, *global));
            }
            loss_sum += value as f64;
            bar.inc(1);
            if b.step.is_multiple_of(20) {
                bar.set_message(format!("epoch {epoch}/{} loss {value:.4}", s.epochs));
            }
            Ok(())
        };
        overlapped(order.chunks(s.batch_size).enumerate(), prepare, train_step)?;
        Ok(loss_sum)
    }

    /// Prints an epoch's line and appends its metrics to `metrics.jsonl`.
    fn record(&self, epoch: usize, m: &EpochMetrics) -> Result<()> {
        let validation = match m.validation() {
            Some(errors) => format!("validation errors {errors}/{}", m.validation_examples),
            None => "no validation split".to_string(),
        };
        self.bar.println(format!(
            "{:>10} epoch {epoch:>3}/{}  loss {:.4}  {validation}",
            self.output.label, self.settings.epochs, m.train_loss
        ));
        append_line(
            &metrics_path(&self.output.dir),
            &serde_json::to_string(m).expect("metrics serialize"),
        )
    }

    /// Saves the weights, the optimizer and the resumable state after `epoch`.
    fn checkpoint(&mut self, epoch: usize, elapsed: f64, snapshot: &Network) -> Result<()> {
        let dir = &self.output.dir;
        snapshot.save(dir)?;
        self.stepper
            .save_optimizer(&resume::ResumeState::optimizer(dir, epoch))?;
        resume::save_epoch(
            dir,
            self.run_id,
            epoch,
            elapsed,
            snapshot,
            self.stepper.param_ids(),
        )?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Keeps the best epoch's weights with a patience, marks the run finished and hands back
    /// the model kept.
    fn finish(self) -> Result<Trained> {
        self.bar.finish_and_clear();
        let best = EarlyStop::keep_best(self.early.as_ref(), self.device)?;
        let best_epoch = best.as_ref().map(|(epoch, _)| *epoch);
        // Finished first, then the resumable state goes: a kill in between leaves a finished
        // model that `--resume` keeps.
        let dir = &self.output.dir;
        mark_complete(dir, Some(self.run_id))?;
        if !self.output.checkpoints.keep {
            resume::clear(dir)?;
        }
        Ok(Trained {
            network: match best {
                Some((_, net)) => net,
                None => self.stepper.network(&self.network.config),
            },
            seconds: self.elapsed(),
            history: self.history,
            best_epoch,
        })
    }
}

/// The error for a loss that is not finite at `step` (from 0) of `epoch`: a teacher that hands
/// over -inf or NaN is the cause, not the learning rate.
fn not_finite(
    value: f32,
    soft: Option<Tensor<2>>,
    epoch: usize,
    step: usize,
    global: usize,
) -> Error {
    if let Some(t) = soft
        && t.clone().is_nan().any().into_scalar::<bool>() | t.is_inf().any().into_scalar::<bool>()
    {
        return Error::NonFinite(format!(
            "the teacher's soft targets at epoch {epoch}, step {} (NaN or infinite \
             log-probabilities; training stopped before they reached the student)",
            step + 1
        ));
    }
    Error::Diverged {
        value,
        epoch,
        step: step + 1,
        global_step: global,
    }
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
