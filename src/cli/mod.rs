//! Stage 8, cli: the command line. Argument definitions (clap derive), one file per command
//! group, each command calling the stages it needs directly, top to bottom. The `distill`
//! binary is a thin wrapper around [`run`].
//!
//! May use: every stage and the foundation modules; nothing uses it but the binary (and
//! `data_dir`, the default dataset, which tests share).

mod args;
mod export;
mod inspect;
mod reproduce;
mod soft_targets;
mod table;
mod train;

use clap::{Parser, Subcommand};

use crate::error::Result;

pub use args::{DataArgs, OnnxArgs, ResumeArgs, SplitName, TrainArgs, TransferArgs, data_dir};
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

/// Refuses a mistyped `DISTILL_DENORMALS` before any work: silently flushing when the user
/// asked for something else would make the run differ from what they believe.
fn check_environment() -> Result<()> {
    let allowed = crate::backend::DENORMALS_SETTINGS;
    match std::env::var("DISTILL_DENORMALS") {
        Ok(v) if !allowed.contains(&v.as_str()) => Err(crate::error::Error::config(format!(
            "environment variable DISTILL_DENORMALS is {v:?}; it must be {}",
            allowed.join(" or ")
        ))),
        _ => Ok(()),
    }
}
