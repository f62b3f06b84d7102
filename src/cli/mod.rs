//! Stage 9, cli, the binary's: the command line. Argument definitions (clap derive), one file per command
//! group, each command calling the stages it needs directly, top to bottom. The `distill`
//! binary is a thin wrapper around [`run`].
//!
//! Part of the binary, not the library: it may use every stage, and the library's messages
//! name settings, which [`flag`] turns into this command line's flag names.

mod args;
mod export;
mod inspect;
mod reproduce;
mod soft_targets;
mod student;
mod table;
mod train;

use clap::{Parser, Subcommand};

use distill::error::{Result, Setting};

pub use export::ExportCmd;
pub use inspect::{SimilarityCmd, SoftenCmd};
pub use reproduce::{BenchCmd, ReproduceCmd, SummarizeCmd, SweepCmd};
pub use soft_targets::SoftTargetsCmd;
pub use table::TableCmd;
pub use train::{DistillCmd, EnsembleCmd, EvalCmd, TrainCmd};

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
#[allow(clippy::large_enum_variant)] // one per process, parsed once
pub enum Command {
    /// Train one model on hard labels (e.g. a teacher: --model mlp:1200,1200 --hidden-dropout 0.5 --jitter 2).
    Train(TrainCmd),
    /// Train a student from a trained teacher's soft targets at temperature T.
    Distill(DistillCmd),
    /// Compute a teacher's soft targets for the transfer set ahead of `distill`, whole or as
    /// shard I of N (one process per shard, e.g. a cluster's array jobs).
    SoftTargets(SoftTargetsCmd),
    /// Evaluate a model directory on the test set.
    Eval(EvalCmd),
    /// Run the paper's MNIST experiment: teacher, student alone, distilled student, report.
    Reproduce(ReproduceCmd),
    /// Distill a teacher you bring (a forest or boosted model as ONNX) into a small MLP on a
    /// feature table (CSV, Parquet, .npz): the student alone, distilled on the training rows and
    /// on rows added by MUNGE; report with a size and speed table.
    Table(TableCmd),
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
    /// Write a trained model for other runtimes: ONNX (onnxruntime, ...) and PyTorch weights.
    Export(ExportCmd),
    /// Gather runs of one experiment made with different seeds: errors per seed, mean ± sd,
    /// findings, and a chart (e.g. `summarize runs/omit-3-s1 runs/omit-3-s2 runs/omit-3-s3`).
    Summarize(SummarizeCmd),
}

/// Parses the command line. From here on the library's messages name settings by their flags.
pub fn parse() -> Cli {
    distill::error::name_settings(flag);
    Cli::parse()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    check_environment()?;
    match cli.command {
        Command::Train(c) => train::cmd_train(c),
        Command::Distill(c) => train::cmd_distill(c),
        Command::SoftTargets(c) => soft_targets::cmd_soft_targets(c),
        Command::Eval(c) => train::cmd_eval(c),
        Command::Reproduce(c) => reproduce::cmd_reproduce(c),
        Command::Table(c) => table::cmd_table(c),
        Command::Ensemble(c) => train::cmd_ensemble(c),
        Command::Bench(c) => reproduce::cmd_bench(c),
        Command::Sweep(c) => reproduce::cmd_sweep(c),
        Command::Soften(c) => inspect::cmd_soften(c),
        Command::Similarity(c) => inspect::cmd_similarity(c),
        Command::Summarize(c) => reproduce::cmd_summarize(c),
        Command::Export(c) => export::cmd_export(c),
    }
}

/// The flag that gives each setting the library's messages name.
fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Alpha => "--alpha",
        Setting::AugmentCache => "--augment-cache",
        Setting::BiasAdjust => "--bias-adjust",
        Setting::Data => "--data",
        Setting::DataDir => "--data-dir",
        Setting::DkdWarmup => "--dkd-warmup",
        Setting::EpochExamples => "--epoch-examples",
        Setting::Impute => "--impute",
        Setting::InputNorm => "--input-norm",
        Setting::Jitter => "--jitter",
        Setting::LearningRate => "--lr",
        Setting::LogitStandardize => "--logit-standardize",
        Setting::Loss => "--loss",
        Setting::Mixup => "--mixup",
        Setting::OmitClasses => "--omit-classes",
        Setting::OnlyClasses => "--only-classes",
        Setting::Only => "--only",
        Setting::Out => "--out",
        Setting::Patience => "--patience",
        Setting::Shard => "--shard",
        Setting::Strings => "--strings",
        Setting::TeacherOutputs => "--teacher-outputs",
        Setting::Temperature => "--temperature",
        Setting::TestSize => "--test-size",
        Setting::TrainSize => "--train-size",
        Setting::TransferFraction => "--transfer-fraction",
        Setting::ValidationSize => "--validation-size",
        Setting::WarmupEpochs => "--warmup-epochs",
    }
}

/// Refuses a mistyped `DISTILL_DENORMALS` before any work: silently flushing when the user
/// asked for something else would make the run differ from what they believe.
fn check_environment() -> Result<()> {
    let allowed = distill::compute::DENORMALS_SETTINGS;
    match std::env::var("DISTILL_DENORMALS") {
        Ok(v) if !allowed.contains(&v.as_str()) => Err(distill::error::Error::config(format!(
            "environment variable DISTILL_DENORMALS is {v:?}; it must be {}",
            allowed.join(" or ")
        ))),
        _ => Ok(()),
    }
}
