//! Commands that make and measure single models: `train`, `distill`, `ensemble`, `eval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::args::{DataArgs, OnnxArgs, ResumeArgs, TrainArgs, TransferArgs};
use crate::backend::compute_device;
use crate::data::Splits;
use crate::distill::{DistillSettings, Objective, distill_objective};
use crate::error::{Error, Result};
use crate::eval::{
    BiasAdjust, adjust_bias, check_bias_adjust, error_percent, evaluate, model_report,
};
use crate::fsutil::RunLock;
use crate::model::{Classifier, Network, Predictor, is_onnx};
use crate::train::train_role;

/// `distill train`.
#[derive(Debug, Args)]
pub struct TrainCmd {
    /// Architecture: mlp:W1,W2,... (hidden-layer widths).
    #[arg(long, default_value = "mlp:1200,1200")]
    pub model: String,
    /// Model directory to write (model.safetensors, metrics.jsonl, config.toml).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub resume: ResumeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill distill`.
#[derive(Debug, Args)]
pub struct DistillCmd {
    /// The teacher: a model directory trained by distill (or an ensemble), or an ONNX file
    /// (.onnx) exported from another framework. An ONNX teacher takes float32 pixels in
    /// [0, 1] (see --input-norm), as [N, C·H·W] or [N, C, H, W] as its input's rank says, and
    /// gives [N, classes] logits (see --teacher-outputs).
    #[arg(long, value_name = "MODEL")]
    pub teacher: PathBuf,
    /// Student architecture.
    #[arg(long, default_value = "mlp:800,800")]
    pub student: String,
    /// Model directory to write for the student.
    #[arg(long)]
    pub out: PathBuf,
    /// Softmax temperature T for teacher and student while training (> 0); prediction uses T = 1.
    #[arg(long, default_value_t = 20.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Weight of the soft-target term in [0, 1]; the hard-label term gets 1 - alpha.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub alpha: f32,
    /// Where teacher soft targets are cached. Default: TEACHER/cache for a model directory;
    /// for an ONNX teacher, a `soft-target-cache` directory beside --out (never beside the
    /// model file).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub resume: ResumeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill ensemble`.
#[derive(Debug, Args)]
pub struct EnsembleCmd {
    /// A member: a model directory or an ONNX file (give two or more, e.g. teachers trained
    /// with different --seed).
    #[arg(long = "member", value_name = "MODEL", required = true, num_args = 1)]
    pub members: Vec<PathBuf>,
    /// Ensemble directory to write (ensemble.json listing the members).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill eval`.
#[derive(Debug, Args)]
pub struct EvalCmd {
    /// Model directory (or its model.safetensors), or an ONNX file (.onnx).
    pub model: PathBuf,
    /// Print the evaluation as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Takes the output directory's lock, telling the user when a dead run's lock was taken over.
fn lock(out: &Path) -> Result<RunLock> {
    let lock = RunLock::acquire(out)?;
    if let Some(pid) = lock.took_over() {
        eprintln!(
            "note: took over the lock of {} left by process {pid}, which no longer runs",
            out.display()
        );
    }
    Ok(lock)
}

pub(super) fn cmd_train(c: TrainCmd) -> Result<()> {
    let role = c.train.role(&c.model).check()?;
    let _lock = lock(&c.out)?;
    let splits = c.data.load()?;
    let (device, _) = compute_device();
    let t = train_role(
        &role,
        &splits,
        &Objective::Hard,
        &device,
        &c.resume.output(&c.out, "train"),
    )?;
    print_result(&t.network, &c.out, &splits, &device, t.seconds)
}

fn print_result(
    net: &Network,
    dir: &Path,
    splits: &Splits,
    device: &burn::tensor::Device,
    secs: f64,
) -> Result<()> {
    let r = model_report(net, dir, splits, device, secs, None)?;
    println!(
        "{}: {} test errors of {} ({:.2}%), {} params, trained in {:.1} s; saved to {}",
        r.spec,
        r.test_errors,
        r.test_examples,
        error_percent(r.test_errors, r.test_examples),
        r.params,
        secs,
        dir.display()
    );
    Ok(())
}

pub(super) fn cmd_distill(c: DistillCmd) -> Result<()> {
    let distill = DistillSettings {
        temperature: c.temperature,
        alpha: c.alpha,
    }
    .check()?;
    let role = c.train.role(&c.student).check()?;
    let bias: BiasAdjust = c.transfer.bias_adjust.parse()?;
    let _lock = lock(&c.out)?;
    let (device, _) = compute_device();
    let splits = c.data.load()?;
    let how = c.onnx.open_options(splits.dataset.shape)?;
    let teacher = Classifier::load_teacher(&c.teacher, &device, &how)?;
    if teacher.classes() != splits.dataset.classes {
        return Err(Error::Mismatch(format!(
            "the teacher has {} classes but the dataset (and so the student) has {}",
            teacher.classes(),
            splits.dataset.classes
        )));
    }
    let selection = c.transfer.settings().check(splits.dataset.classes)?;
    check_bias_adjust(bias, &selection.missing_classes(), splits.validation.len())?;
    let transfer = if selection.is_everything() {
        splits.clone()
    } else {
        splits.with_train(
            splits
                .train
                .subset(&selection.indices(&splits.train, c.train.seed)),
        )
    };
    let cache = c
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache(&c.teacher, &c.out));
    let (objective, note) = distill_objective(
        &teacher,
        &c.teacher,
        role.train.settings().jitter,
        &transfer.train,
        Arc::new(distill),
        &cache,
        &device,
    )?;
    eprintln!("transfer set: {} examples; {note}", transfer.train.len());
    let out = c.resume.output(&c.out, "distill");
    let mut t = train_role(&role, &transfer, &objective, &device, &out)?;
    print_result(&t.network, &c.out, &splits, &device, t.seconds)?;
    if let Some(b) = adjust_bias(
        &mut t.network,
        &splits,
        &selection.missing_classes(),
        bias,
        &device,
    )? {
        t.network.save_complete(&c.out)?;
        println!(
            "bias of classes {:?} raised by {:.2} ({}); validation errors {} -> {}",
            b.classes, b.shift, b.method, b.validation_errors_before, b.validation_errors_after
        );
        print_result(&t.network, &c.out, &splits, &device, t.seconds)?;
    }
    Ok(())
}

/// Where soft targets are cached by default: inside a teacher directory distill wrote, but
/// beside the output directory for an ONNX file, so that nothing is written next to a file
/// the user owns.
pub(super) fn default_cache(teacher: &Path, out: &Path) -> PathBuf {
    if is_onnx(teacher) {
        let parent = out.parent().unwrap_or(Path::new("."));
        parent.join("soft-target-cache")
    } else {
        teacher.join("cache")
    }
}

pub(super) fn cmd_ensemble(c: EnsembleCmd) -> Result<()> {
    let (device, _) = compute_device();
    let splits = c.data.load()?;
    let how = c.onnx.open_options(splits.dataset.shape)?;
    let ens = Classifier::create_ensemble(&c.out, &c.members, &device, &how)?;
    let r = model_report(&ens, &c.out, &splits, &device, 0.0, None)?;
    println!(
        "{}: {} test errors of {} ({:.2}%); written to {}",
        r.spec,
        r.test_errors,
        r.test_examples,
        error_percent(r.test_errors, r.test_examples),
        c.out.display()
    );
    Ok(())
}

pub(super) fn cmd_eval(c: EvalCmd) -> Result<()> {
    let (device, _) = compute_device();
    let splits = c.data.load_test_only()?;
    let net = Classifier::open(
        &c.model,
        &device,
        &c.onnx.open_options(splits.dataset.shape)?,
    )?;
    let e = evaluate(&net, &splits.test, splits.dataset.classes, &device)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&e).expect("evaluation serializes")
        );
    } else {
        println!(
            "{}: {} test errors of {} ({:.2}%), NLL {:.4}\nerrors per class: {:?}",
            net.describe(),
            e.errors,
            e.examples,
            e.error_percent(),
            e.nll,
            e.class_errors
        );
    }
    Ok(())
}
