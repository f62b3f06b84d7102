//! The command-line interface: argument definitions (clap derive) and dispatch into the
//! library. The `distill` binary is a thin wrapper around [`run`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::distill::{DistillSettings, check_temperature};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::experiment::{
    Preset, ReproduceConfig, ReproduceOptions, RoleConfig, Splits, compute_device, model_report,
    reproduce, teacher_soft_targets, train_role,
};
use crate::model::Network;
use crate::train::{Objective, OptimizerKind, Schedule, TrainSettings};

/// Knowledge distillation (Hinton, Vinyals & Dean 2015): train a big teacher, distill it into
/// a small student, and see why it works.
#[derive(Debug, Parser)]
#[command(name = "distill", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model on hard labels (e.g. a teacher: --model mlp:1200,1200 --hidden-dropout 0.5 --jitter 2).
    Train(TrainCmd),
    /// Train a student from a trained teacher's soft targets at temperature T.
    Distill(DistillCmd),
    /// Evaluate a model directory on the test set.
    Eval(EvalCmd),
    /// Run the paper's MNIST experiment: teacher, student alone, distilled student, report.
    Reproduce(ReproduceCmd),
}

/// Where the data comes from and how much of it is used.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Directory with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
    /// and t10k-labels-idx1-ubyte (each raw or .gz). Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Examples held out of the training set for validation (never the test set).
    #[arg(long, default_value_t = 5000)]
    pub validation_size: usize,
    /// Use only the first N training examples (after the validation hold-out).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

impl DataArgs {
    fn load(&self) -> Result<Splits> {
        Splits::load(
            &data_dir(self.data_dir.as_deref()),
            self.validation_size,
            self.train_size,
            self.test_size,
        )
    }
}

/// The default data directory: `./data/mnist` if present, else the one in this source tree.
pub fn data_dir(given: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
    }
}

/// Optimization options shared by `train` and `distill`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Passes over the training (transfer) set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Optimizer (SGD uses momentum 0.9).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    pub schedule: Schedule,
    /// Randomly shift training images by up to this many pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub jitter: usize,
    /// Dropout on input pixels while training.
    #[arg(long, default_value_t = 0.0)]
    pub input_dropout: f64,
    /// Dropout on hidden units while training.
    #[arg(long, default_value_t = 0.0)]
    pub hidden_dropout: f64,
    /// Seed for initialization, shuffling, dropout and jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl TrainArgs {
    fn role(&self, spec: &str) -> RoleConfig {
        RoleConfig {
            spec: spec.into(),
            input_dropout: self.input_dropout,
            hidden_dropout: self.hidden_dropout,
            train: TrainSettings {
                epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.lr,
                optimizer: self.optimizer,
                schedule: self.schedule,
                jitter: self.jitter,
                seed: self.seed,
            },
        }
    }
}

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
    pub data: DataArgs,
}

/// `distill distill`.
#[derive(Debug, Args)]
pub struct DistillCmd {
    /// Trained teacher's model directory.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Student architecture.
    #[arg(long, default_value = "mlp:800,800")]
    pub student: String,
    /// Model directory to write for the student.
    #[arg(long)]
    pub out: PathBuf,
    /// Softmax temperature T for teacher and student while training (> 0); prediction uses T = 1.
    #[arg(long, default_value_t = 20.0)]
    pub temperature: f32,
    /// Weight of the soft-target term in [0, 1]; the hard-label term gets 1 - alpha.
    #[arg(long, default_value_t = 0.9)]
    pub alpha: f32,
    /// Where teacher soft targets are cached. Default: TEACHER/cache.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill eval`.
#[derive(Debug, Args)]
pub struct EvalCmd {
    /// Model directory (or its model.safetensors).
    pub model: PathBuf,
    /// Print the evaluation as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceCmd {
    /// smoke: subset, seconds (for tests); quick: full MNIST, minutes; paper: the paper's
    /// schedules, hours on 2 cores.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// Output directory (report.md, report.json, config.toml, teacher/, student/, distilled/).
    #[arg(long, default_value = "runs/mnist")]
    pub out: PathBuf,
    /// Master seed; teacher and students derive their seeds from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Data directory (four IDX files). Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Override the preset's temperature (preset: 20).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Override the preset's soft-target weight (preset: 0.9).
    #[arg(long)]
    pub alpha: Option<f32>,
    /// Retrain the teacher even if OUT/teacher was trained with the same config and data.
    #[arg(long)]
    pub retrain_teacher: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(c) => cmd_train(c),
        Command::Distill(c) => cmd_distill(c),
        Command::Eval(c) => cmd_eval(c),
        Command::Reproduce(c) => cmd_reproduce(c),
    }
}

fn cmd_train(c: TrainCmd) -> Result<()> {
    let role = c.train.role(&c.model).check()?;
    let splits = c.data.load()?;
    let (device, _) = compute_device();
    let t = train_role(
        &role,
        &splits,
        &Objective::Hard,
        &device,
        &c.out,
        "train",
        true,
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
        100.0 * r.test_errors as f64 / r.test_examples.max(1) as f64,
        r.params,
        secs,
        dir.display()
    );
    Ok(())
}

fn cmd_distill(c: DistillCmd) -> Result<()> {
    let distill = DistillSettings {
        temperature: c.temperature,
        alpha: c.alpha,
    }
    .check()?;
    let role = c.train.role(&c.student).check()?;
    let (device, _) = compute_device();
    let teacher = Network::load(&c.teacher, &device)?;
    let splits = c.data.load()?;
    if teacher.config.classes != splits.dataset.classes {
        return Err(Error::Mismatch(format!(
            "the teacher has {} classes but the dataset (and so the student) has {}",
            teacher.config.classes, splits.dataset.classes
        )));
    }
    let cache = c
        .cache_dir
        .clone()
        .unwrap_or_else(|| c.teacher.join("cache"));
    let (targets, outcome, path) = teacher_soft_targets(
        &teacher,
        &c.teacher,
        &splits.train,
        distill.temperature(),
        &cache,
        &device,
    )?;
    eprintln!("teacher soft targets: {outcome:?} ({})", path.display());
    let objective = Objective::Distill {
        config: distill,
        teacher_log_probs: targets,
    };
    let t = train_role(&role, &splits, &objective, &device, &c.out, "distill", true)?;
    print_result(&t.network, &c.out, &splits, &device, t.seconds)
}

fn cmd_eval(c: EvalCmd) -> Result<()> {
    let (device, _) = compute_device();
    let net = Network::load(&c.model, &device)?;
    let splits = c.data.load()?;
    let e = evaluate(&net, &splits.test, splits.dataset.classes, &device)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&e).expect("evaluation serializes")
        );
    } else {
        println!(
            "{}: {} test errors of {} ({:.2}%), NLL {:.4}\nerrors per class: {:?}",
            net.config.spec(),
            e.errors,
            e.examples,
            e.error_percent(),
            e.nll,
            e.class_errors
        );
    }
    Ok(())
}

fn cmd_reproduce(c: ReproduceCmd) -> Result<()> {
    let mut config = ReproduceConfig::preset(c.preset, c.seed, data_dir(c.data_dir.as_deref()));
    if let Some(t) = c.temperature {
        check_temperature(t)?;
        config.distill.temperature = t;
    }
    if let Some(a) = c.alpha {
        config.distill.alpha = a;
    }
    let report = reproduce(&ReproduceOptions {
        config,
        out: c.out.clone(),
        retrain_teacher: c.retrain_teacher,
        progress: true,
    })?;
    println!("{}", report.table());
    for n in &report.notes {
        println!("note: {n}");
    }
    println!("report: {}", c.out.join("report.md").display());
    Ok(())
}
