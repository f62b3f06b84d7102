//! `distill table`: a teacher you bring, distilled into a small MLP on a feature table.

use std::path::PathBuf;

use clap::Args;

use super::args::{DataArgs, ExtraRowsArgs, OnnxArgs, data_dir, library_value};
use distill::error::Result;
use distill::experiment::{TableRecipe, reproduce_table};
use distill::model::ModelSpec;
use distill::train::{OptimizerKind, RoleParams, Schedule, TrainParams};

/// `distill table`.
#[derive(Debug, Args)]
pub struct TableCmd {
    /// The teacher: an ONNX file (a scikit-learn, LightGBM or XGBoost tree ensemble exported
    /// with zipmap off, or any network taking [N, F] features), or a model directory.
    #[arg(long, value_name = "MODEL")]
    pub teacher: PathBuf,
    /// The student, trained alone and distilled alike: an MLP (mlp:W1,W2,...).
    #[arg(long, default_value = "mlp:128,128", value_parser = library_value::<ModelSpec>)]
    pub student: ModelSpec,
    /// Temperatures tried for each distilled student (comma-separated); each student keeps
    /// the one with the fewest validation errors, ties going to the lower.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4",
        value_name = "T,..."
    )]
    pub temperatures: Vec<f32>,
    /// Weight of the soft targets; the labels get 1 - alpha.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub alpha: f32,
    /// Epochs of every student: at least this many, and more on a small table, so that each
    /// takes at least 4,500 steps (the report says when).
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Adam's learning rate, decayed to 0 by a cosine schedule.
    #[arg(long, default_value_t = 0.002)]
    pub lr: f64,
    /// Rows per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Keep each student's epoch with the fewest validation errors and stop after N epochs
    /// without fewer (the same for the student alone and the distilled ones). Default: every
    /// epoch trains and the last is kept.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Output directory (report.md, report.json, config.toml, student/, distilled/, ...).
    #[arg(long, default_value = "runs/table")]
    pub out: PathBuf,
    /// Seeds the students and MUNGE.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub extra: ExtraRowsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

pub(super) fn cmd_table(c: TableCmd) -> Result<()> {
    let recipe = TableRecipe {
        data: data_dir(c.data.data_dir.as_deref()),
        table: c.data.table(),
        teacher: c.teacher.clone(),
        onnx: c.onnx.options()?,
        student: RoleParams {
            spec: c.student.to_string(),
            input_dropout: 0.0,
            hidden_dropout: 0.0,
            train: TrainParams {
                epochs: c.epochs,
                batch_size: c.batch_size,
                learning_rate: c.lr,
                optimizer: OptimizerKind::Adam,
                schedule: Schedule::Cosine,
                warmup_epochs: 0,
                jitter: 0,
                seed: c.seed,
                clip_norm: None,
                mixup: 0.0,
                patience: c.patience,
            },
        },
        temperatures: c.temperatures.clone(),
        alpha: c.alpha,
        synthetic: c.extra.munge(Some("munge:4"))?,
        transfer_file: c.extra.transfer_file.clone(),
        validation_size: c.data.validation_size,
        seed: c.seed,
    };
    let report = reproduce_table(&recipe, &c.out, true)?;
    println!("{}", report.table());
    if let Some(t) = report.size_speed_table() {
        println!("\n{}", t.markdown());
    }
    println!("report: {}", c.out.join("report.md").display());
    Ok(())
}
