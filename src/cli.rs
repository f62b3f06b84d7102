//! The command-line interface: argument definitions (clap derive) and dispatch into the
//! library. The `distill` binary is a thin wrapper around [`run`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::data::Dataset;
use crate::data::TransferSettings;
use crate::distill::{DistillSettings, check_temperature};
use crate::error::{Error, Result};
use crate::eval::{
    agreement, check_compatible, class_similarity, evaluate, ranking_without, similar_pairs, soften,
};
use crate::experiment::{
    BiasAdjust, ExperimentKind, Preset, ReproduceConfig, ReproduceOptions, RoleConfig, Splits,
    adjust_bias, check_bias_adjust, compute_device, distill_objective, model_report, reproduce,
    train_role,
};
use crate::model::{Classifier, Network, Predictor};
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
    /// Combine trained models into an ensemble that averages their softened probabilities;
    /// it can be evaluated and used as a teacher like any model.
    Ensemble(EnsembleCmd),
    /// Distill one student per temperature (and alpha) from one teacher; chart errors against T.
    Sweep(SweepCmd),
    /// Time training, distillation (live and cached teacher) and inference; JSON for bench/compare.sh.
    Bench(BenchCmd),
    /// Show one image's class probabilities at several temperatures (the "dark knowledge").
    Soften(SoftenCmd),
    /// Class-by-class similarity a model has learned: mean soft targets per true class.
    Similarity(SimilarityCmd),
    /// Gather runs of one experiment made with different seeds: errors per seed, mean ± sd,
    /// findings, and a chart (e.g. `summarize runs/omit-3-s1 runs/omit-3-s2 runs/omit-3-s3`).
    Summarize(SummarizeCmd),
}

/// Where the data comes from and how much of it is used.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Directory with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
    /// and t10k-labels-idx1-ubyte (each raw or .gz). Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Examples held out of the training set for validation (never the test set). 0 fits all
    /// training examples; epochs then report the loss only (as the `paper` preset does, after
    /// its settings were chosen with 5,000 held out).
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
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub lr: f64,
    /// Optimizer (SGD uses momentum 0.9).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up before the schedule starts. Large early
    /// gradients (a distilled student at high T starts far from its soft targets) can
    /// silence ReLU units for good; a short warm-up avoids that.
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,
    /// Randomly shift training images by up to this many pixels (0 = off). A distilled
    /// student with jitter gets its teacher's soft targets live on every shifted batch
    /// (slower; cached targets only cover unshifted images).
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
                warmup_epochs: self.warmup_epochs,
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
    #[arg(long, default_value_t = 20.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Weight of the soft-target term in [0, 1]; the hard-label term gets 1 - alpha.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub alpha: f32,
    /// Where teacher soft targets are cached. Default: TEACHER/cache.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// Which training examples the student learns from (the teacher is never retrained).
#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// Keep this fraction of each class of the training set (seeded, class-stratified), in (0, 1].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub transfer_fraction: Option<f64>,
    /// Leave these classes out of the transfer set (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "C,...")]
    pub omit_classes: Vec<usize>,
    /// Keep only these classes in the transfer set (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "C,...")]
    pub only_classes: Vec<usize>,
    /// After training, raise the output biases of classes missing from the transfer set:
    /// `auto` picks the shift with the fewest validation errors, a number sets it, `none` skips.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|none|VALUE",
        allow_negative_numbers = true
    )]
    pub bias_adjust: String,
}

impl TransferArgs {
    fn settings(&self) -> TransferSettings {
        TransferSettings {
            fraction: self.transfer_fraction,
            omit_classes: self.omit_classes.clone(),
            only_classes: self.only_classes.clone(),
        }
    }
}

/// `distill ensemble`.
#[derive(Debug, Args)]
pub struct EnsembleCmd {
    /// A member's model directory (give two or more, e.g. teachers trained with different --seed).
    #[arg(long = "member", value_name = "DIR", required = true, num_args = 1)]
    pub members: Vec<PathBuf>,
    /// Ensemble directory to write (ensemble.json listing the members).
    #[arg(long)]
    pub out: PathBuf,
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
    /// Which experiment: mnist (teacher, student alone, distilled student), omit-3 (no 3 in the
    /// transfer set, then bias adjustment), only-7-8, small-data (3% of the training set) or
    /// ensemble (5 teachers, their ensemble, one model distilled from it).
    #[arg(long, value_enum, default_value_t = ExperimentKind::Mnist)]
    pub experiment: ExperimentKind,
    /// Use this trained teacher (model or ensemble directory) instead of training one
    /// (not for --experiment ensemble).
    #[arg(long, value_name = "DIR")]
    pub teacher: Option<PathBuf>,
    /// Bias adjustment for classes missing from the transfer set: auto, none or a number
    /// (default: auto for omit-3 and only-7-8).
    #[arg(long, value_name = "auto|none|VALUE", allow_negative_numbers = true)]
    pub bias_adjust: Option<String>,
    /// smoke: subset, seconds (for tests); quick: full MNIST, about 7 minutes on 2 cores;
    /// paper: all 60,000 training images, long schedules (teacher 96 epochs, students 80 on
    /// Adam), about 40 minutes on 2 cores.
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
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Override the preset's soft-target weight (preset: 0.9).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Shift the distilled student's transfer images by up to N pixels, with the teacher's soft
    /// targets computed live on each shifted batch. The student alone stays unshifted; a control
    /// student trained alone on the same shifts (`student_jitter`) is added to the report.
    #[arg(long, value_name = "N")]
    pub distilled_jitter: Option<usize>,
    /// Retrain the teacher even if OUT/teacher was trained with the same config and data.
    #[arg(long)]
    pub retrain_teacher: bool,
}

/// `distill sweep`.
#[derive(Debug, Args)]
pub struct SweepCmd {
    /// Trained teacher (e.g. runs/mnist/teacher); its soft targets are cached per T.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Temperatures, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,8,20",
        allow_negative_numbers = true
    )]
    pub temperatures: Vec<f32>,
    /// Soft-target weights, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.9",
        allow_negative_numbers = true
    )]
    pub alphas: Vec<f32>,
    /// Student architecture; repeat for several (default mlp:800,800).
    #[arg(long = "student", value_name = "SPEC")]
    pub students: Vec<String>,
    /// Output directory (sweep.json, sweep.md, sweep.png/.svg and one model per setting).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill bench`.
#[derive(Debug, Args)]
pub struct BenchCmd {
    /// Write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Worker threads of the CPU pool (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repeats per figure.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed warm-up repeats per figure.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Examples per epoch (55,000 is one MNIST training epoch).
    #[arg(long, default_value_t = 55_000)]
    pub epoch_examples: usize,
    /// Also measure peak memory of `reproduce --preset quick` (adds about 7 minutes).
    #[arg(long)]
    pub memory: bool,
    /// Data directory. Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `distill soften`.
#[derive(Debug, Args)]
pub struct SoftenCmd {
    /// Model directory.
    pub model: PathBuf,
    /// Position of the image in the split.
    #[arg(long, conflicts_with = "class", required_unless_present = "class")]
    pub index: Option<usize>,
    /// Use the first image of this true class instead of --index.
    #[arg(long)]
    pub class: Option<usize>,
    /// Temperatures, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,5,10,20",
        allow_negative_numbers = true
    )]
    pub temperatures: Vec<f64>,
    /// Which split the image comes from.
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Print JSON: {"index", "label", "temperatures", "probs"}.
    #[arg(long)]
    pub json: bool,
    /// Also draw a chart (.png or .svg) with the image beside it.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Logarithmic probability axis in the chart.
    #[arg(long)]
    pub log: bool,
    /// Data directory. Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Which labelled split an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitName {
    /// The test set.
    Test,
    /// The full training set (before the validation hold-out).
    Train,
}

/// `distill similarity`.
#[derive(Debug, Args)]
pub struct SimilarityCmd {
    /// Model directory.
    pub model: PathBuf,
    /// Temperature of the soft targets.
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Other models (e.g. the distilled student and the student alone) to compare with MODEL:
    /// mean KL(MODEL_T || OTHER_T) on the test set and top-1 agreement.
    #[arg(long, value_name = "DIR")]
    pub compare: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw the heatmap (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Number of most similar class pairs to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Data directory. Default: data/mnist of this repository.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `distill summarize`.
#[derive(Debug, Args)]
pub struct SummarizeCmd {
    /// Run directories written by `distill reproduce` (each with a report.json), one per seed.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Also write summary.md, summary.json, summary.html, summary.png and summary.svg here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(c) => cmd_train(c),
        Command::Distill(c) => cmd_distill(c),
        Command::Eval(c) => cmd_eval(c),
        Command::Reproduce(c) => cmd_reproduce(c),
        Command::Ensemble(c) => cmd_ensemble(c),
        Command::Bench(c) => cmd_bench(c),
        Command::Sweep(c) => cmd_sweep(c),
        Command::Soften(c) => cmd_soften(c),
        Command::Similarity(c) => cmd_similarity(c),
        Command::Summarize(c) => cmd_summarize(c),
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
        crate::eval::error_percent(r.test_errors, r.test_examples),
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
    let bias: BiasAdjust = c.transfer.bias_adjust.parse()?;
    let (device, _) = compute_device();
    let teacher = Classifier::load(&c.teacher, &device)?;
    let splits = c.data.load()?;
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
        .unwrap_or_else(|| c.teacher.join("cache"));
    let (objective, note) = distill_objective(
        &teacher,
        &c.teacher,
        &role,
        &transfer.train,
        distill,
        &cache,
        &device,
    )?;
    eprintln!("transfer set: {} examples; {note}", transfer.train.len());
    let mut t = train_role(
        &role, &transfer, &objective, &device, &c.out, "distill", true,
    )?;
    print_result(&t.network, &c.out, &splits, &device, t.seconds)?;
    if let Some(b) = adjust_bias(
        &mut t.network,
        &splits,
        &selection.missing_classes(),
        bias,
        &device,
    )? {
        t.network.save(&c.out)?;
        println!(
            "bias of classes {:?} raised by {:.2} ({}); validation errors {} -> {}",
            b.classes, b.shift, b.method, b.validation_errors_before, b.validation_errors_after
        );
        print_result(&t.network, &c.out, &splits, &device, t.seconds)?;
    }
    Ok(())
}

fn cmd_ensemble(c: EnsembleCmd) -> Result<()> {
    let (device, _) = compute_device();
    let ens = Classifier::create_ensemble(&c.out, &c.members, &device)?;
    let splits = c.data.load()?;
    let r = model_report(&ens, &c.out, &splits, &device, 0.0, None)?;
    println!(
        "{}: {} test errors of {} ({:.2}%); written to {}",
        r.spec,
        r.test_errors,
        r.test_examples,
        crate::eval::error_percent(r.test_errors, r.test_examples),
        c.out.display()
    );
    Ok(())
}

fn cmd_eval(c: EvalCmd) -> Result<()> {
    let (device, _) = compute_device();
    let net = Classifier::load(&c.model, &device)?;
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

fn cmd_reproduce(c: ReproduceCmd) -> Result<()> {
    let mut config = ReproduceConfig::recipe(
        c.experiment,
        c.preset,
        c.seed,
        data_dir(c.data_dir.as_deref()),
    );
    if let Some(b) = &c.bias_adjust {
        config.bias_adjust = b.parse()?;
    }
    if c.teacher.is_some() && config.members > 1 {
        return Err(Error::config(
            "--teacher cannot be combined with --experiment ensemble, which trains its own members",
        ));
    }
    if let Some(t) = c.temperature {
        check_temperature(t)?;
        config.distill.temperature = t;
    }
    if let Some(a) = c.alpha {
        config.distill.alpha = a;
    }
    if c.distilled_jitter.is_some() {
        config.distilled_jitter = c.distilled_jitter;
    }
    let report = reproduce(&ReproduceOptions {
        config,
        out: c.out.clone(),
        retrain_teacher: c.retrain_teacher,
        teacher: c.teacher.clone(),
        progress: true,
    })?;
    println!("{}", report.table());
    for n in &report.notes {
        println!("note: {n}");
    }
    println!("report: {}", c.out.join("report.md").display());
    Ok(())
}

fn cmd_soften(c: SoftenCmd) -> Result<()> {
    for &t in &c.temperatures {
        check_temperature(t as f32)?;
    }
    let (device, _) = compute_device();
    let net = Classifier::load(&c.model, &device)?;
    let ds = Dataset::load(&data_dir(c.data_dir.as_deref()))?;
    let split = match c.split {
        SplitName::Test => &ds.test,
        SplitName::Train => &ds.train,
    };
    check_compatible(&net, split, ds.classes)?;
    let index = match (c.index, c.class) {
        (Some(i), _) if i >= split.len() => {
            return Err(Error::config(format!(
                "--index {i} is out of range: the split has {} images",
                split.len()
            )));
        }
        (Some(i), _) => i,
        (None, Some(class)) => split
            .labels
            .iter()
            .position(|&l| l as usize == class)
            .ok_or_else(|| {
                Error::config(format!(
                    "no image of class {class} in the split (classes are 0..{})",
                    ds.classes - 1
                ))
            })?,
        (None, None) => return Err(Error::config("give --index N or --class C")),
    };
    let one = split.subset(&[index]);
    let row = crate::eval::logits(&net, &one, &device)?;
    let probs = soften(&row, &c.temperatures);
    let label = one.labels[0] as usize;
    if let Some(p) = &c.plot {
        crate::plot::soften_chart(
            p,
            &crate::plot::SoftenChart {
                image: &one.images,
                shape: [ds.rows, ds.cols],
                label,
                temperatures: &c.temperatures,
                probs: &probs,
                log_scale: c.log,
                title: format!("{}: image {index} (a {label}) softened", net.describe()),
            },
        )?;
    }
    if c.json {
        let v = serde_json::json!({"index": index, "label": label, "temperatures": c.temperatures, "probs": probs});
        println!("{v}");
        return Ok(());
    }
    println!(
        "image {index} of the {:?} split, true class {label}\n",
        c.split
    );
    print!("class");
    for t in &c.temperatures {
        print!(" {:>10}", format!("T={t}"));
    }
    println!();
    for cls in 0..ds.classes {
        print!("{cls:>5}");
        for p in &probs {
            print!(" {:>10.3e}", p[cls]);
        }
        println!();
    }
    println!();
    for (t, p) in c.temperatures.iter().zip(&probs) {
        let r: Vec<String> = ranking_without(p, label)
            .iter()
            .map(|c| c.to_string())
            .collect();
        println!(
            "T={t}: other classes, most probable first: {}",
            r.join(" > ")
        );
    }
    Ok(())
}

fn cmd_similarity(c: SimilarityCmd) -> Result<()> {
    check_temperature(c.temperature as f32)?;
    let (device, _) = compute_device();
    let net = Classifier::load(&c.model, &device)?;
    let ds = Dataset::load(&data_dir(c.data_dir.as_deref()))?;
    check_compatible(&net, &ds.test, ds.classes)?;
    let logits = crate::eval::logits(&net, &ds.test, &device)?;
    let m = class_similarity(&logits, &ds.test.labels, ds.classes, c.temperature);
    let pairs = similar_pairs(&m, c.top);
    let mut comparisons = Vec::new();
    for other in &c.compare {
        let o = Classifier::load(other, &device)?;
        check_compatible(&o, &ds.test, ds.classes)?;
        let ol = crate::eval::logits(&o, &ds.test, &device)?;
        comparisons.push((
            other.display().to_string(),
            agreement(&logits, &ol, ds.classes, c.temperature),
        ));
    }
    if let Some(p) = &c.plot {
        crate::plot::heatmap(
            p,
            &m,
            &format!(
                "{}: mean soft targets at T = {} per true class",
                net.describe(),
                c.temperature
            ),
            "soft-target class",
            false,
        )?;
    }
    if c.json {
        let v = serde_json::json!({
            "temperature": c.temperature,
            "matrix": m,
            "pairs": pairs.iter().map(|(a, b, s)| serde_json::json!({"a": a, "b": b, "similarity": s})).collect::<Vec<_>>(),
            "comparisons": comparisons.iter().map(|(n, a)| serde_json::json!({"model": n, "mean_kl": a.mean_kl, "top1_agreement": a.top1_agreement})).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "mean soft targets at T = {} per true class (rows: true class)\n",
        c.temperature
    );
    print!("    ");
    for j in 0..ds.classes {
        print!(" {j:>8}");
    }
    println!();
    for (i, row) in m.iter().enumerate() {
        print!("{i:>4}");
        for v in row {
            print!(" {v:>8.2e}");
        }
        println!();
    }
    println!("\nmost similar pairs:");
    for (a, b, s) in &pairs {
        println!("  {a} ~ {b}: {s:.3e}");
    }
    for (name, a) in &comparisons {
        println!(
            "vs {name}: mean KL {:.4} nats at T = {}, top-1 agreement {:.2}%",
            a.mean_kl,
            c.temperature,
            100.0 * a.top1_agreement
        );
    }
    Ok(())
}

fn cmd_bench(c: BenchCmd) -> Result<()> {
    crate::backend::init_threads(c.threads);
    let (device, backend) = compute_device();
    let ds = Dataset::load(&data_dir(c.data_dir.as_deref()))?;
    let opts = crate::bench::BenchOptions {
        reps: c.reps,
        warmup: c.warmup,
        epoch_examples: c.epoch_examples,
        memory: c.memory,
    };
    let report = crate::bench::run(&opts, &ds.train, &device, backend, |what| {
        eprintln!("bench: {what}")
    })?;
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "figure", "median", "min", "max"
    );
    for (k, f) in &report.figures {
        println!("{k:<28} {:>12.3} {:>12.3} {:>12.3}", f.median, f.min, f.max);
    }
    if let Some(p) = &c.json {
        crate::bench::write_json(&report, p)?;
    }
    Ok(())
}

fn cmd_sweep(c: SweepCmd) -> Result<()> {
    let students = if c.students.is_empty() {
        vec!["mlp:800,800".to_string()]
    } else {
        c.students.clone()
    };
    for a in &c.alphas {
        DistillSettings {
            temperature: 1.0,
            alpha: *a,
        }
        .check()?;
    }
    let report = crate::sweep::sweep(&crate::sweep::SweepOptions {
        teacher: c.teacher.clone(),
        students,
        temperatures: c.temperatures.clone(),
        alphas: c.alphas.clone(),
        train: c.train.role("mlp:1").train,
        data_dir: data_dir(c.data.data_dir.as_deref()),
        validation_size: c.data.validation_size,
        train_size: c.data.train_size,
        test_size: c.data.test_size,
        out: c.out.clone(),
        progress: true,
    })?;
    println!("| student | alpha | T | test errors | validation errors |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for p in &report.points {
        println!(
            "| {} | {} | {} | {} / {} | {} |",
            p.student, p.alpha, p.temperature, p.test_errors, p.test_examples, p.validation_errors
        );
    }
    for f in &report.findings {
        println!("{f}");
    }
    println!("report: {}", c.out.join("sweep.md").display());
    Ok(())
}

fn cmd_summarize(c: SummarizeCmd) -> Result<()> {
    let summary = crate::summary::summarize(&c.runs)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        print!("{}", summary.markdown());
    }
    if let Some(out) = &c.out {
        summary.write(out)?;
        eprintln!(
            "wrote summary.md, summary.json, summary.html, summary.png and summary.svg to {}",
            out.display()
        );
    }
    Ok(())
}
