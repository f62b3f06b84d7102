//! Commands that make and measure single models: `train`, `distill`, `ensemble`, `eval`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::Args;

use super::args::{
    DataArgs, ExtraRowsArgs, OnnxArgs, ResumeArgs, TrainArgs, TransferArgs, library_value,
};
use super::student::Student;
use distill::compute::compute_device;
use distill::data::Splits;
use distill::distill::{LossKind, LossParams, Objective, StudentInputs};
use distill::error::{Error, Result};
use distill::eval::{
    BiasAdjust, adjust_bias, check_bias_adjust, error_percent, evaluate, model_report,
    teacher_warning,
};
use distill::experiment::grid::{Pick, TEMPERATURES};
use distill::fsutil::RunLock;
use distill::model::{Classifier, ModelSpec, Network, Predictor, TeacherOutputs};
use distill::train::train_role;

/// `distill train`.
#[derive(Debug, Args)]
pub struct TrainCmd {
    /// Architecture: mlp:W1,W2,... (ReLU layers of these widths) or cnn:C1,C2,.../D1,...[+bn]
    /// (3x3 convolution blocks of C channels, each followed by 2x2 max-pool and ReLU, then dense
    /// ReLU layers of widths D; +bn adds batch norm after each convolution; hidden dropout
    /// applies to the dense layers). E.g. mlp:1200,1200 or cnn:32,64/256.
    #[arg(long, default_value = "mlp:1200,1200", value_parser = library_value::<ModelSpec>)]
    pub model: ModelSpec,
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
    /// Student architecture, in --model's grammar of `distill train` (mlp:W1,... or
    /// cnn:C1,.../D1,...[+bn]).
    #[arg(long, default_value = "mlp:800,800", value_parser = library_value::<ModelSpec>)]
    pub student: ModelSpec,
    /// Model directory to write for the student.
    #[arg(long)]
    pub out: PathBuf,
    /// The soft-target loss: kd (Hinton et al. 2015), dkd (decoupled KD, Zhao et al. 2022) or
    /// dist (correlation relations, Huang et al. 2022).
    #[arg(long, value_name = "KIND", default_value = "kd", value_parser = library_value::<LossKind>)]
    pub loss: LossKind,
    /// Softmax temperature (> 0) of teacher and student while training; prediction uses T = 1.
    /// Default: 20 for kd, 4 for dkd, 1 for dist (its tau). With --logit-standardize, the
    /// base temperature applied to the z-scored logits (default 2, as Sun et al.). `auto`
    /// trains one student at each of 1, 2, 4, 8 and 20 (in OUT/grid/T*-a*) and keeps the
    /// one with the fewest validation errors (ties go to the lower T) as OUT; the grid and the
    /// choice go to OUT/choice.json. It needs a validation split.
    #[arg(long, allow_negative_numbers = true, value_name = "T|auto",
          value_parser = library_value::<Pick>)]
    pub temperature: Option<Pick>,
    /// kd: weight of the soft-target term in [0, 1], the labels get 1 - alpha (default 0.9);
    /// `auto` then trains students at 0.5, 0.9 and 1 (after T, at the kept T) and keeps the
    /// one with the fewest validation errors, like `--temperature auto`. dkd: weight of the
    /// target-class term (default 1).
    #[arg(long, allow_negative_numbers = true, value_name = "ALPHA|auto",
          value_parser = library_value::<Pick>)]
    pub alpha: Option<Pick>,
    /// dkd: weight of the non-target term (default 8). dist: weight of the inter-class
    /// relation (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f32>,
    /// dist: weight of the intra-class relation (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f32>,
    /// dkd: epochs over which its terms' weight rises linearly to 1 (default 20).
    #[arg(long, value_name = "EPOCHS")]
    pub dkd_warmup: Option<usize>,
    /// dkd and dist: weight of the cross-entropy to the labels (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub ce_weight: Option<f32>,
    /// Z-score each example's logits before the temperature softmax (Sun et al. 2024), for
    /// kd and dkd; the cross-entropy to the labels keeps the raw logits.
    #[arg(long)]
    pub logit_standardize: bool,
    /// Where teacher soft targets are cached. Default: TEACHER/cache for a model directory;
    /// for an ONNX teacher, a `soft-target-cache` directory beside --out (never beside the
    /// model file).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// With --jitter: cache the teacher's soft targets for K fixed views of every transfer
    /// image (the unshifted one and K-1 distinct seeded shifts), in float16, and train from
    /// the cache with no teacher in the loop; each epoch shows every image in one of its
    /// views. 0 runs the teacher live on every shifted batch.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub augment_cache: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub extra: ExtraRowsArgs,
    /// After training, raise the output biases of classes missing from the transfer set:
    /// `auto` picks the shift with the fewest validation errors, a number sets it, `none` skips.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|none|VALUE",
        allow_negative_numbers = true,
        value_parser = library_value::<BiasAdjust>
    )]
    pub bias_adjust: BiasAdjust,
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

fn refuse_jitter_on_table(splits: &Splits, jitter: usize) -> Result<()> {
    match splits.dataset.is_table() && jitter > 0 {
        true => Err(Error::config(
            "--jitter shifts images; a table has no pixels to shift (drop it)",
        )),
        false => Ok(()),
    }
}

pub(super) fn cmd_train(c: TrainCmd) -> Result<()> {
    let role = c.train.role(&c.model).check()?;
    let _lock = lock(&c.out)?;
    let splits = c.data.load()?;
    refuse_jitter_on_table(&splits, role.train.settings().jitter)?;
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

/// The weight options each loss reads (kd, dkd, dist), beside `--temperature`, which all read.
const LOSS_OPTIONS: [(&str, [bool; 3]); 5] = [
    ("--alpha", [true, true, false]),
    ("--beta", [false, true, true]),
    ("--gamma", [false, false, true]),
    ("--dkd-warmup", [false, true, false]),
    ("--ce-weight", [false, true, true]),
];

impl DistillCmd {
    /// The loss the options ask for, each unset hyperparameter at its paper's default.
    fn loss_settings(&self) -> Result<LossParams> {
        let kind = self.loss;
        self.refuse_unread_loss_options(kind)?;
        let d = LossParams::defaults(kind);
        let d = match self.logit_standardize {
            true => d.standardized(),
            false => d,
        };
        let temperature = match self.temperature {
            Some(Pick::Value(t)) => t,
            _ => d.temperature,
        };
        Ok(LossParams {
            temperature,
            alpha: match self.alpha {
                Some(Pick::Value(a)) => a,
                _ => d.alpha,
            },
            beta: self.beta.unwrap_or(d.beta),
            gamma: self.gamma.unwrap_or(d.gamma),
            warmup_epochs: self.dkd_warmup.unwrap_or(d.warmup_epochs),
            ce_weight: self.ce_weight.unwrap_or(d.ce_weight),
            standardize: self.logit_standardize,
            ..d
        })
    }

    /// The temperatures to train at: the one asked for (or the loss's default), or with `auto`
    /// the grid.
    fn temperatures(&self) -> Result<Vec<f32>> {
        match self.temperature {
            Some(Pick::Auto) => Ok(TEMPERATURES.to_vec()),
            _ => Ok(vec![self.loss_settings()?.temperature]),
        }
    }

    /// Refuses an option the chosen loss would silently ignore: a user who sets `--beta` for
    /// kd believes it changed the run.
    fn refuse_unread_loss_options(&self, kind: LossKind) -> Result<()> {
        let column = match kind {
            LossKind::Kd => 0,
            LossKind::Dkd => 1,
            LossKind::Dist => 2,
        };
        let given = [
            self.alpha.is_some(),
            self.beta.is_some(),
            self.gamma.is_some(),
            self.dkd_warmup.is_some(),
            self.ce_weight.is_some(),
        ];
        let Some(((flag, _), _)) = LOSS_OPTIONS
            .iter()
            .zip(given)
            .find(|((_, reads), given)| *given && !reads[column])
        else {
            return Ok(());
        };
        let read: Vec<&str> = std::iter::once("--temperature")
            .chain(
                LOSS_OPTIONS
                    .iter()
                    .filter(|(_, reads)| reads[column])
                    .map(|(f, _)| *f),
            )
            .collect();
        Err(Error::config(format!(
            "{flag} has no effect with --loss {}: that loss reads only {}",
            self.loss.name(),
            read.join(", ")
        )))
    }
}

/// Before training: a teacher fed other data or other pixels than it learned from (an ONNX
/// file's normalization or class order, a directory trained on another dataset of the same
/// shape) is caught in one pass over the validation split, not after epochs.
fn check_teacher(teacher: &Classifier, splits: &Splits, device: &Device) -> Result<()> {
    if !splits.validation.is_empty() {
        let classes = splits.dataset.classes;
        let e = evaluate(teacher, &splits.validation, classes, device)?;
        eprintln!(
            "teacher: {} validation errors of {} ({:.2}%)",
            e.errors,
            e.examples,
            e.error_percent()
        );
        if let Some(w) = teacher_warning(&e, classes) {
            eprintln!("{w}");
        }
    }
    if let Classifier::Onnx(m) = teacher
        && m.outputs() == TeacherOutputs::Probs
    {
        eprintln!(
            "teacher: its outputs are read as probabilities (--teacher-outputs logits if they \
             are not)"
        );
    }
    Ok(())
}

pub(super) fn cmd_distill(c: DistillCmd) -> Result<()> {
    let settings = c.loss_settings()?;
    let temperatures = c.temperatures()?;
    let alpha_auto = c.alpha == Some(Pick::Auto);
    if alpha_auto && c.loss != LossKind::Kd {
        return Err(Error::config(
            "--alpha auto applies only to --loss kd; give --alpha a number with another loss",
        ));
    }
    for &temperature in &temperatures {
        LossParams {
            temperature,
            ..settings
        }
        .check()?;
    }
    let role = c.train.role(&c.student).check()?;
    let s = role.train.settings();
    StudentInputs::check(s.jitter, s.mixup, c.augment_cache)?;
    let bias = c.bias_adjust;
    let _lock = lock(&c.out)?;
    let (device, _) = compute_device();
    let splits = c.data.load()?;
    let how = c.onnx.open_options(splits.dataset.shape)?;
    let teacher = Classifier::load_teacher(&c.teacher, &device, &how)?;
    teacher.expect_classes(splits.dataset.classes)?;
    let extra = c.extra.rows(c.data.table(), c.train.seed, None)?;
    refuse_jitter_on_table(&splits, s.jitter)?;
    let (selection, transfer) = c.transfer.select(&splits, c.train.seed)?;
    let (transfer, rows) = extra.extend(transfer, &teacher, &device)?;
    check_bias_adjust(bias, &selection.missing_classes(), splits.validation.len())?;
    check_teacher(&teacher, &splits, &device)?;
    let grid = temperatures.len() > 1 || alpha_auto;
    if grid && splits.validation.is_empty() {
        return Err(Error::config(
            "--temperature auto and --alpha auto choose on validation errors, which needs a \
             validation split",
        ));
    }
    let transfer_note = match extra.is_empty() {
        true => format!("{} examples", transfer.train.len()),
        false => rows.to_string(),
    };
    let student = Student {
        c: &c,
        role: &role,
        teacher: &teacher,
        transfer: &transfer,
        note: transfer_note,
        device: &device,
    };
    let mut t = match grid {
        false => student.train(settings.check()?, &c.out, "distill")?,
        true => student.choose(&settings, &temperatures, alpha_auto)?,
    };
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
        let probe = splits.probe_images(&device);
        let [probed, _] = probe.dims();
        let silent = net.silent_units(&probe);
        if !silent.is_empty() {
            println!(
                "ReLU units that never fire on the first {probed} training images, per layer: {silent:?}"
            );
        }
    }
    Ok(())
}
