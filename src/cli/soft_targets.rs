//! `distill soft-targets`: the teacher's soft targets for a transfer set, alone or one shard of
//! many, so that teacher inference can run as a cluster's array jobs.

use std::path::PathBuf;

use clap::Args;

use super::args::{DataArgs, OnnxArgs, TransferArgs, library_value};
use super::student::default_cache;
use distill::compute::compute_device;
use distill::distill::{
    LossKind, LossParams, Shard, ShardWrite, teacher_soft_targets, write_soft_target_shard,
};
use distill::error::Result;
use distill::model::Classifier;

/// `distill soft-targets`.
#[derive(Debug, Args)]
pub struct SoftTargetsCmd {
    /// The teacher: a model directory (or ensemble) or an ONNX file, as for `distill distill`.
    #[arg(long, value_name = "MODEL")]
    pub teacher: PathBuf,
    /// Compute only shard I of N (I from 1 to N) of the transfer set's rows, e.g. `--shard
    /// $SLURM_ARRAY_TASK_ID/8` in a Slurm array `--array=1-8` (see examples/slurm). A finished
    /// shard is verified, not recomputed; a broken one is replaced; a shard another process is
    /// writing is refused (exit 7). Without it, the whole cache is written as `distill distill`
    /// would write it.
    #[arg(long, value_name = "I/N", value_parser = library_value::<Shard>)]
    pub shard: Option<Shard>,
    /// Cache directory to write into; give it to `distill distill --cache-dir`, which joins a
    /// complete set of shards and refuses an incomplete or mixed one. Default: where `distill
    /// distill` looks (TEACHER/cache, or `soft-target-cache` in the current directory for an
    /// ONNX teacher).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The loss the student will be distilled with: it fixes the default temperature (kd 20,
    /// dkd 4, dist 1).
    #[arg(long, value_name = "KIND", default_value = "kd", value_parser = library_value::<LossKind>)]
    pub loss: LossKind,
    /// Temperature of the soft targets; must be the one `distill distill` is given.
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Seed of the transfer subset (only with --transfer-fraction): `distill distill`'s --seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

pub(super) fn cmd_soft_targets(c: SoftTargetsCmd) -> Result<()> {
    let temperature = c
        .temperature
        .unwrap_or(LossParams::defaults(c.loss).temperature);
    distill::distill::check_temperature(temperature)?;
    let (device, _) = compute_device();
    let splits = c.data.load()?;
    let how = c.onnx.open_options(splits.dataset.shape)?;
    let teacher = Classifier::load_teacher(&c.teacher, &device, &how)?;
    teacher.expect_classes(splits.dataset.classes)?;
    let (_, transfer) = c.transfer.select(&splits, c.seed)?;
    let dir = c
        .out
        .clone()
        .unwrap_or_else(|| default_cache(&c.teacher, &PathBuf::from("soft-targets")));
    let rows = transfer.train.len();
    match c.shard {
        Some(shard) => {
            let (path, r, done) = write_soft_target_shard(
                &teacher,
                &c.teacher,
                &transfer.train,
                temperature,
                &dir,
                shard,
                &device,
            )?;
            let done = match done {
                ShardWrite::Computed => "computed".to_string(),
                ShardWrite::Verified(sha) => format!("already there, verified (SHA-256 {sha})"),
                ShardWrite::Repaired(why) => format!("was broken ({why}), computed again"),
            };
            println!(
                "shard {}/{}: rows {}..{} of {rows} at T = {temperature} {done} -> {}",
                shard.index,
                shard.count,
                r.start,
                r.end,
                path.display()
            );
        }
        None => {
            let (_, _, path) = teacher_soft_targets(
                &teacher,
                &c.teacher,
                &transfer.train,
                temperature,
                &dir,
                &device,
            )?;
            println!("{rows} rows at T = {temperature} -> {}", path.display());
        }
    }
    Ok(())
}
