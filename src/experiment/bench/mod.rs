//! Benchmarks on the project's own models and data path: training steps and epochs of the
//! teacher, distillation with a live teacher, with cached soft targets and with soft targets
//! cached per shifted view, CNN training steps, inference latency and throughput, and speed
//! levers (`levers`), after the foreign inputs (`interop`). The peak memory of a whole run is
//! measured by the command line, which can start one.
//! Every figure is the median of repeated runs after warm-up, with min and max;
//! `bench/compare.sh` runs the same workloads in PyTorch and prints the ratios.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use self::interop::interop_figures;
use self::levers::lever_figures;
use self::timed::Timed;
use crate::compute::PlainMlp;
use crate::data::{Dataset, DeviceSplit, ImageShape, Split, index_tensor};
use crate::distill::{DistillLoss, ViewTargets, log_soft_targets};
use crate::error::{Error, Result, Setting};
use crate::eval::median;
use crate::model::{Dropout, ModelConfig, ModelSpec, Network, plain_mlp};
use crate::train::{OptimizerKind, Schedule, Stepper, TrainConfig, TrainParams, overlapped};

mod figures;
mod interop;
mod levers;
mod timed;

pub(crate) use figures::repeat;
pub use figures::{BenchOptions, BenchReport, Figure, figure};
pub use interop::InteropOptions;

/// A freshly initialized network of `spec` for the benchmark's dataset.
fn net(
    spec: &str,
    dropout: Dropout,
    shape: ImageShape,
    classes: usize,
    device: &Device,
) -> Result<Network> {
    let spec: ModelSpec = spec.parse()?;
    let config = ModelConfig::new(&spec, shape, classes, dropout)?;
    device.seed(7);
    Ok(Network::init(config, device))
}

fn sgd() -> Result<TrainConfig> {
    TrainParams {
        epochs: 1,
        batch_size: 128,
        learning_rate: 0.05,
        optimizer: OptimizerKind::Sgd,
        schedule: Schedule::Constant,
        warmup_epochs: 0,
        jitter: 0,
        seed: 7,
        clip_norm: None,
        mixup: 0.0,
        patience: None,
    }
    .check()
}

/// What a distillation step learns from.
enum Soft<'a> {
    None,
    Live(&'a Network, &'a dyn DistillLoss),
    Cached(&'a Tensor<2>, &'a dyn DistillLoss),
    /// Soft targets cached per shifted view; each batch is shifted on the host as training
    /// does.
    Views(&'a ViewTargets, &'a Split, &'a dyn DistillLoss),
}

/// Seconds for one pass over `data` in shuffled batches of 128.
fn epoch(
    stepper: &mut Stepper,
    data: &DeviceSplit,
    soft: &Soft<'_>,
    device: &Device,
    rng: &mut StdRng,
) -> f64 {
    let mut order: Vec<usize> = (0..data.len).collect();
    order.shuffle(rng);
    let t = Instant::now();
    steps(stepper, data, order.chunks(128), soft, device, rng);
    t.elapsed().as_secs_f64()
}

/// A batch as the training loop makes it: images, labels and soft targets.
type Batch<'a> = (
    Tensor<2>,
    Tensor<1, Int>,
    Option<(Tensor<2>, &'a dyn DistillLoss)>,
);

/// Trains on each chunk of example indices in turn, preparing the next batch (a live teacher's
/// soft targets included) while the current one trains, as `train` does.
fn steps<'a>(
    stepper: &mut Stepper,
    data: &DeviceSplit,
    chunks: impl Iterator<Item = &'a [usize]> + Send,
    soft: &Soft<'_>,
    device: &Device,
    rng: &mut StdRng,
) {
    let prepare = |chunk: &[usize]| -> Result<Batch<'_>> {
        let idx = index_tensor(chunk, device);
        let y = data.labels_at(&idx);
        let (x, targets) = match soft {
            Soft::None => (data.images_at(&idx), None),
            Soft::Live(teacher, loss) => {
                let x = data.images_at(&idx);
                let t = log_soft_targets(teacher.net.forward(x.clone()), loss.temperature());
                (x, Some((t, *loss)))
            }
            Soft::Cached(all, loss) => {
                let t = (*all).clone().select(0, idx.clone());
                (data.images_at(&idx), Some((t, *loss)))
            }
            Soft::Views(views, split, loss) => {
                let (x, t) = views.batch(split, chunk, rng, device);
                (x, Some((t, *loss)))
            }
        };
        Ok((x, y, targets))
    };
    let step = |(x, y, targets): Batch<'_>| {
        stepper.step(x, y, targets, 0.05);
        Ok(())
    };
    // Nothing in either closure fails.
    let _ = overlapped(chunks, prepare, step);
}

/// Milliseconds per step, averaged over `count` steps on random batches.
fn steps_ms(
    stepper: &mut Stepper,
    data: &DeviceSplit,
    soft: &Soft<'_>,
    device: &Device,
    rng: &mut StdRng,
    count: usize,
) -> f64 {
    let mut order: Vec<usize> = (0..data.len).collect();
    order.shuffle(rng);
    let last = data.len.saturating_sub(128).max(1);
    let chunks: Vec<&[usize]> = (0..count)
        .map(|k| {
            let start = (k * 128) % last;
            &order[start..(start + 128).min(data.len)]
        })
        .collect();
    let t = Instant::now();
    steps(stepper, data, chunks.into_iter(), soft, device, rng);
    1e3 * t.elapsed().as_secs_f64() / count as f64
}

/// Runs every benchmark on the training images of `dataset`, with the paper's teacher and
/// student architectures sized to its images and classes.
pub fn run(
    opts: &BenchOptions,
    dataset: &Dataset,
    device: &Device,
    backend: &str,
    progress: impl Fn(&str),
) -> Result<BenchReport> {
    check_only(&opts.only)?;
    // First, so that the peak memory they report is theirs and the dataset's alone.
    let figures = interop_figures(opts, &opts.interop, dataset, device, &progress)?;
    let split = &dataset.train;
    let n = opts.epoch_examples.min(split.len());
    if n < 128 {
        return Err(Error::setting(
            Setting::EpochExamples,
            "must be at least 128 (one batch)",
        ));
    }
    let mut timed = Timed::new(opts, dataset, n, device)?;
    let mut figs = Selected {
        figures,
        only: &opts.only,
    };
    timed.teacher(&mut figs, &progress);
    timed.distillation(&mut figs, &progress)?;
    timed.cnn(&mut figs, &progress)?;
    timed.inference(&mut figs, &progress);

    if figs.wants_prefix("lever_") {
        progress("speed levers: burn's dropout, SGD and dense layers against ours");
        let levers = lever_figures(opts, &timed.teacher, device);
        for (name, figure) in levers {
            figs.time(name, || figure);
        }
    }

    // The foreign-input figures and their peak memory are measured whatever was asked for.
    let only = figs.only;
    figs.figures
        .retain(|name, _| only.is_empty() || only.contains(name));
    let env = crate::report::Environment::detect(backend);
    Ok(BenchReport {
        implementation: "distill".into(),
        version: format!(
            "distill {} / burn {}",
            env!("CARGO_PKG_VERSION"),
            crate::compute::BURN_VERSION
        ),
        threads: crate::compute::threads(),
        backend: backend.into(),
        machine: env.hardware,
        figures: figs.figures,
    })
}

/// Every figure `run` can time, for `--only`.
pub const FIGURES: &[&str] = &[
    "teacher_step_ms",
    "teacher_epoch_s",
    "kd_step_live_ms",
    "kd_epoch_live_s",
    "kd_step_cached_ms",
    "kd_epoch_cached_s",
    "kd_epoch_views_s",
    "cnn_teacher_step_ms",
    "cnn_student_step_ms",
    "teacher_latency_b1_us",
    "teacher_latency_b1_burn_us",
    "teacher_latency_b1_burn_1thread_us",
    "teacher_throughput_b1024",
    "student_latency_b1_us",
    "student_latency_b1_burn_us",
    "student_latency_b1_burn_1thread_us",
    "student_throughput_b1024",
    "lever_dropout_burn_ms",
    "lever_dropout_ours_ms",
    "lever_sgd_burn_ms",
    "lever_sgd_ours_ms",
    "lever_dense_burn_ms",
    "lever_dense_ours_ms",
    "npz_read_s",
    "onnx_teacher_s",
    "peak_rss_mib",
    "peak_rss_quick_mib",
];

fn check_only(only: &[String]) -> Result<()> {
    match only.iter().find(|n| !FIGURES.contains(&n.as_str())) {
        Some(name) => Err(Error::setting(
            Setting::Only,
            format!(
                "names an unknown figure {name:?}; known: {}",
                FIGURES.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Images per turn of [`serving_latency`].
const TURN: usize = 50;
/// The images at the start of a turn that only warm the caches.
const TURN_WARMUP: usize = 10;

/// Batch-1 latency on the serving path ([`PlainMlp`]) of each MLP in `models`, as
/// `{name}_latency_b1_us`, over the images of `host` (`C * H * W` values each). The models
/// take turns of [`TURN`] images, so a machine whose speed drifts over seconds (as shared
/// virtual machines' does) moves every figure alike and their ratio stays put. The first
/// [`TURN_WARMUP`] images of a turn are not counted: they reload the weights the other model's
/// turn evicted, which a server of one model would not pay.
fn serving_latency(
    figs: &mut Selected,
    opts: &BenchOptions,
    models: [(&str, &Network); 2],
    host: &[f32],
) {
    let plains: Vec<(String, PlainMlp)> = models
        .into_iter()
        .map(|(name, model)| (format!("{name}_latency_b1_us"), model))
        .filter(|(name, _)| figs.wants(name))
        .filter_map(|(name, model)| Some((name, plain_mlp(model, None)?)))
        .collect();
    let Some((_, first)) = plains.first() else {
        return;
    };
    let images: Vec<&[f32]> = host.chunks(first.inputs().max(1)).collect();
    let mut medians = vec![Vec::new(); plains.len()];
    for rep in 0..opts.warmup + opts.reps.max(1) {
        let mut times = vec![Vec::new(); plains.len()];
        for turn in images.chunks(TURN) {
            for ((_, plain), times) in plains.iter().zip(&mut times) {
                for (k, image) in turn.iter().enumerate() {
                    let s = Instant::now();
                    let _ = plain.logits(image);
                    if k >= TURN_WARMUP.min(turn.len() - 1) {
                        times.push(1e6 * s.elapsed().as_secs_f64());
                    }
                }
            }
        }
        if rep >= opts.warmup {
            for (m, t) in medians.iter_mut().zip(&mut times) {
                m.push(median(t));
            }
        }
    }
    for ((name, _), m) in plains.into_iter().zip(medians) {
        figs.figures.insert(name, figure(m));
    }
}

/// The figures measured so far, and which ones `--only` asks for (all when empty).
struct Selected<'a> {
    figures: BTreeMap<String, Figure>,
    only: &'a [String],
}

impl Selected<'_> {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    fn wants_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.wants(n))
    }

    fn wants_prefix(&self, prefix: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n.starts_with(prefix))
    }

    /// Runs `measure` and records its figure under `name`, if wanted.
    fn time(&mut self, name: impl Into<String>, measure: impl FnOnce() -> Figure) {
        let name = name.into();
        if self.wants(&name) {
            let figure = measure();
            self.figures.insert(name, figure);
        }
    }
}

/// Writes the report as JSON to `path` atomically.
pub fn write_json(report: &BenchReport, path: &Path) -> Result<()> {
    crate::fsutil::write_json(path, report)
}
