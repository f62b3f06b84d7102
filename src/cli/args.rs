//! Options shared by several commands: where the data is and how much of it is used, how a
//! model is optimized, and which examples a student learns from.

use std::path::{Path, PathBuf};

use clap::Args;

use distill::data::{
    ImageShape, Impute, Munge, Splits, Strings, TableOptions, TransferConfig, TransferParams,
};
use distill::error::{Error, Result};
use distill::experiment::ExtraRows;
use distill::model::{ModelSpec, OnnxOptions, OpenOptions};
use distill::train::{
    CHECKPOINT_SECONDS, Checkpoints, OptimizerKind, RoleParams, RunOutput, Schedule, TrainParams,
};

/// Where the data comes from and how much of it is used.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The dataset: a directory in the MNIST four-file IDX layout (train-images-idx3-ubyte,
    /// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or
    /// .gz), a Keras-layout .npz (x_train, y_train, x_test, y_test; images [N, H, W],
    /// [N, H, W, C] or [N, C, H, W], uint8 or floats in [0, 1]; labels [N] or [N, 1] integers,
    /// or one-hot rows), or an image-folder root (train/<class>/*.png|jpg and test/<class>/*,
    /// or val/<class>/*), or a feature table: a .csv (with a header row) or .parquet file,
    /// or a directory with train.csv and test.csv (or .parquet). An .npz whose x_train is
    /// [N, F] is a table too. --data-dir is an alias. Default: data/mnist of this repository.
    #[arg(long = "data", visible_alias = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Tables: the class column. Default: the last column.
    #[arg(long, value_name = "COLUMN", help_heading = "Tables")]
    pub label: Option<String>,
    /// Tables: what a text feature column becomes: `one-hot` (one 0/1 feature per value seen
    /// in the training rows, recorded with the run; an unseen value is all zeros) or `refuse`
    /// (the column is refused by name).
    #[arg(long, value_name = "HOW", default_value = "one-hot", value_parser = parse_strings, help_heading = "Tables")]
    pub strings: Strings,
    /// Tables without a test file: the fraction of each class held out as the test set, with
    /// a fixed seed (0) so that every run tests on the same rows. The report says so.
    #[arg(long, value_name = "F", default_value_t = 0.2, help_heading = "Tables")]
    pub test_fraction: f64,
    /// Tables: `mean` replaces a missing or non-finite feature with its column's mean over the
    /// training rows (a missing text value becomes all zeros). Default: such values are refused,
    /// naming row and column.
    #[arg(long, value_name = "HOW", value_parser = parse_impute, help_heading = "Tables")]
    pub impute: Option<Impute>,
    /// Examples held out of the training set for validation (never the test set). 0 fits all
    /// training examples; epochs then report the loss only (as the `paper` preset does, after
    /// its settings were chosen with 5,000 held out). Default: a tenth of the training set, at
    /// most 5,000.
    #[arg(long, value_name = "N")]
    pub validation_size: Option<usize>,
    /// Use only the first N training examples (after the validation hold-out).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

impl DataArgs {
    /// How a table is read, from these options.
    pub fn table(&self) -> TableOptions {
        TableOptions {
            label: self.label.clone(),
            strings: self.strings,
            test_fraction: self.test_fraction,
            impute: self.impute,
        }
    }

    /// Loads the dataset and cuts it into the splits these options ask for.
    pub fn load(&self) -> Result<Splits> {
        Splits::load(
            &data_dir(self.data_dir.as_deref()),
            &self.table(),
            self.validation_size,
            self.train_size,
            self.test_size,
        )
    }
}

impl DataArgs {
    /// Loads the dataset for commands that only evaluate (no validation split is held out,
    /// so any dataset size works; `--test-size` still applies).
    pub fn load_test_only(&self) -> Result<Splits> {
        Splits::load(
            &data_dir(self.data_dir.as_deref()),
            &self.table(),
            Some(0),
            None,
            self.test_size,
        )
    }
}

fn parse_strings(s: &str) -> std::result::Result<Strings, String> {
    match s {
        "one-hot" => Ok(Strings::OneHot),
        "refuse" => Ok(Strings::Refuse),
        _ => Err(format!("'{s}' is not one-hot or refuse")),
    }
}

fn parse_impute(s: &str) -> std::result::Result<Impute, String> {
    match s {
        "mean" => Ok(Impute::Mean),
        _ => Err(format!(
            "'{s}' is not a way to impute; the one there is: mean"
        )),
    }
}

/// Parses a library value (a model spec, a loss, a bias setting) for clap, which names the
/// flag and the value itself: of the library's message only the problem is kept.
pub fn library_value<T: std::str::FromStr<Err = distill::Error>>(
    s: &str,
) -> std::result::Result<T, String> {
    s.parse().map_err(|e| match e {
        distill::Error::Setting { problem, .. } => problem,
        distill::Error::Config(message) => message,
        e => e.to_string(),
    })
}

/// The data directory given, else the MNIST directory [`distill::data::mnist_dir`] finds.
pub fn data_dir(given: Option<&Path>) -> PathBuf {
    given.map_or_else(distill::data::mnist_dir, Path::to_path_buf)
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
    /// (slower), unless --augment-cache caches them for fixed shifts.
    #[arg(long, default_value_t = 0)]
    pub jitter: usize,
    /// Dropout on input pixels while training.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub input_dropout: f64,
    /// Dropout on hidden units while training.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub hidden_dropout: f64,
    /// Seed for initialization, shuffling, dropout and jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scale down any parameter's gradient whose L2 norm exceeds this before the step
    /// (0 = never). Default: 5 for CNNs, which can otherwise lose every channel in
    /// distillation's first steps from a confident teacher; off for MLPs.
    #[arg(long, value_name = "NORM", allow_negative_numbers = true)]
    pub clip_grad_norm: Option<f64>,
    /// Blend every training image with another of its batch (mixup), weights drawn from
    /// Beta(ALPHA, ALPHA) and kept at least half its own (0 = off; 0.2 to 1 are usual). A
    /// distilled student then gets its teacher's soft targets live for each blend, which
    /// shows it how the teacher behaves between the training images, not only on them.
    #[arg(
        long,
        value_name = "ALPHA",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub mixup: f64,
    /// Keep the epoch with the fewest validation errors (not the last) and stop after N
    /// epochs without fewer. The learning-rate schedule still spans --epochs. Needs a
    /// validation split. Default: every epoch trains and the last is kept.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
}

impl TrainArgs {
    /// A role of architecture `spec` trained with these options.
    pub fn role(&self, spec: &ModelSpec) -> RoleParams {
        RoleParams {
            spec: spec.to_string(),
            input_dropout: self.input_dropout,
            hidden_dropout: self.hidden_dropout,
            train: self.settings(),
        }
    }

    /// The optimization settings alone.
    pub fn settings(&self) -> TrainParams {
        TrainParams {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            optimizer: self.optimizer,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            jitter: self.jitter,
            seed: self.seed,
            clip_norm: self.clip_grad_norm,
            mixup: self.mixup,
            patience: self.patience,
        }
    }
}

/// Rows added to a table's transfer set: unlabelled rows from a file, synthetic rows by MUNGE.
#[derive(Debug, Clone, Default, Args)]
pub struct ExtraRowsArgs {
    /// Tables: a file of unlabelled rows (a .csv or .parquet with the training file's columns,
    /// or an .npz whose x_train has its features) added to the transfer set; a label column in
    /// it is ignored. The teacher labels every such row: the student learns its soft targets,
    /// and its most likely class stands in for the label in the cross-entropy term.
    #[arg(long = "transfer", value_name = "PATH", help_heading = "Tables")]
    pub transfer_file: Option<PathBuf>,
    /// Tables: `munge:K` adds K times the transfer set's real rows, drawn by MUNGE (Bucilua
    /// et al. 2006) from each row and its nearest neighbour, seeded by --seed and labelled by
    /// the teacher as --transfer's rows are; `none` adds none. Their soft targets are cached
    /// with the others. Default: none for `distill distill`, munge:4 for `distill table`.
    #[arg(long, value_name = "munge:K", help_heading = "Tables")]
    pub synthetic: Option<String>,
    /// Tables, with --synthetic: the probability that MUNGE moves each attribute of a row
    /// towards its neighbour's.
    #[arg(long, value_name = "P", default_value_t = Munge::SWAP, help_heading = "Tables")]
    pub munge_swap: f64,
    /// Tables, with --synthetic: a moved numeric value is drawn from a normal around the
    /// neighbour's value with standard deviation |difference| / S.
    #[arg(long, value_name = "S", default_value_t = Munge::SPREAD, help_heading = "Tables")]
    pub munge_spread: f64,
}

impl ExtraRowsArgs {
    /// The MUNGE settings asked for (`default` where --synthetic is not given).
    pub fn munge(&self, default: Option<&str>) -> Result<Option<Munge>> {
        match self.synthetic.as_deref().or(default) {
            None | Some("none") => Ok(None),
            Some(s) => {
                let k = s
                    .strip_prefix("munge:")
                    .and_then(|k| k.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::config(format!(
                            "--synthetic takes munge:K (e.g. munge:4) or none, got {s:?}"
                        ))
                    })?;
                Ok(Some(Munge::new(k, self.munge_swap, self.munge_spread)?))
            }
        }
    }

    /// The rows to add, read as `table` says, MUNGE seeded by `seed`.
    pub fn rows(&self, table: TableOptions, seed: u64, default: Option<&str>) -> Result<ExtraRows> {
        Ok(ExtraRows {
            file: self.transfer_file.clone(),
            synthetic: self.munge(default)?,
            table,
            seed,
        })
    }
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
}

impl TransferArgs {
    /// The transfer-set selection these options ask for (unchecked).
    pub fn settings(&self) -> TransferParams {
        TransferParams {
            fraction: self.transfer_fraction,
            omit_classes: self.omit_classes.clone(),
            only_classes: self.only_classes.clone(),
        }
    }

    /// The checked selection and `splits` with their training set cut to it (`seed` draws a
    /// fraction), exactly as `distill distill` and `distill soft-targets` both need it.
    pub fn select(&self, splits: &Splits, seed: u64) -> Result<(TransferConfig, Splits)> {
        let selection = self.settings().check(splits.dataset.classes)?;
        let transfer = if selection.is_everything() {
            splits.clone()
        } else {
            splits.with_train(splits.train.subset(&selection.indices(&splits.train, seed)))
        };
        Ok((selection, transfer))
    }
}

/// Which labelled split an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitName {
    /// The test set.
    Test,
    /// The full training set (before the validation hold-out).
    Train,
}

/// Surviving a kill: continue an interrupted run, keep its resumable state.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// Continue an interrupted run from the state it saved at its last finished epoch (same
    /// options, same --out); a model that already finished is kept, not retrained. The
    /// resumed run ends bit-identical to an uninterrupted one.
    #[arg(long)]
    pub resume: bool,
    /// Keep the resumable state (OUT/resume/) after the run finishes instead of removing it.
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Least seconds between two checkpoints (weights and resumable state, written at an
    /// epoch's end; the last epoch always writes). A kill loses at most this much training plus
    /// one epoch. 0 writes one every epoch.
    #[arg(long, value_name = "SECONDS", default_value_t = CHECKPOINT_SECONDS)]
    pub checkpoint_every: u64,
}

impl ResumeArgs {
    /// Where and how a run writes: into `dir`, labelled `label`, with these options.
    pub fn output(&self, dir: &Path, label: &str) -> RunOutput {
        RunOutput {
            checkpoints: self.checkpoints(),
            ..RunOutput::new(dir, label, true)
        }
    }

    /// What the options ask of every model's checkpoints.
    pub fn checkpoints(&self) -> Checkpoints {
        Checkpoints {
            resume: self.resume,
            keep: self.keep_checkpoints,
            every_seconds: self.checkpoint_every,
        }
    }
}

/// How to run a model given as an `.onnx` file (ignored for model directories).
#[derive(Debug, Clone, Default, Args)]
pub struct OnnxArgs {
    /// For an ONNX model that expects normalized input outside its graph: per-channel
    /// MEAN,STD applied to the [0, 1] pixels, either two numbers for every channel or the
    /// channels' means then their standard deviations (e.g. 0.1307,0.3081 or
    /// 0.485,0.456,0.406,0.229,0.224,0.225).
    #[arg(long, value_name = "MEAN,STD", allow_hyphen_values = true)]
    pub input_norm: Option<String>,
    /// What an ONNX model's output holds: logits, probs (a model that ends in a softmax), or
    /// auto: probs when its outputs for blank images are rows in [0, 1] summing to 1, logits
    /// otherwise.
    #[arg(long, value_name = "KIND", default_value = "auto")]
    pub teacher_outputs: String,
    /// The ONNX output that holds the class scores or probabilities, by name (e.g.
    /// `probabilities` of a scikit-learn export). Default: found by itself: the float tensor
    /// output, or the one named `probabilities` among several. A tree ensemble's probabilities
    /// (a forest's votes included) serve as soft targets through their logarithms: at
    /// temperature T the teacher gives softmax(log(p) / T), so T > 1 lifts the small and zero
    /// probabilities (a zero counts as the smallest positive float).
    #[arg(long, value_name = "NAME")]
    pub teacher_output: Option<String>,
}

impl OnnxArgs {
    /// The checked options.
    pub fn options(&self) -> Result<OnnxOptions> {
        Ok(OnnxOptions {
            input_norm: self.input_norm.as_deref().map(str::parse).transpose()?,
            outputs: self.teacher_outputs.parse()?,
            output: self.teacher_output.clone(),
        })
    }

    /// Checked options for opening models with images of `shape`.
    pub fn open_options(&self, shape: ImageShape) -> Result<OpenOptions> {
        Ok(OpenOptions {
            shape: Some(shape),
            onnx: self.options()?,
        })
    }
}
