//! The library's one error type, grouped by cause.
//!
//! Every failure a user can provoke (bad files, bad options, bad checkpoints, a diverging run)
//! is a variant here with a message that names the thing at fault, so the binary can print it
//! as one paragraph and exit non-zero instead of panicking.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Everything that can go wrong in `distill`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being attempted ("reading", "writing", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A data file exists but its contents are not a valid IDX file of the expected kind.
    #[error("{path} is not a valid IDX file: {reason}")]
    Idx {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The data files are individually valid but do not fit together.
    #[error("dataset in {dir}: {reason}")]
    Dataset {
        /// The data directory.
        dir: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// An option or configuration value is out of its allowed range or does not parse.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// One setting's value is out of its allowed range or does not parse.
    #[error("invalid configuration: {setting} {problem}")]
    Setting {
        /// The setting at fault.
        setting: Setting,
        /// What is wrong with its value, with the value ("must be in [0, 1], got 2").
        problem: String,
    },
    /// A model (a checkpoint, a model directory, an ONNX file) is missing, unreadable or
    /// inconsistent.
    #[error("model {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file or model directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two models or a model and a dataset disagree (class counts, input sizes).
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// Training produced a non-finite loss.
    #[error(
        "training diverged: the loss became {value} at epoch {epoch}, step {step} (global step {global_step}); \
         try a lower learning rate"
    )]
    Diverged {
        /// The non-finite value seen (NaN or inf).
        value: f32,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// 1-based step counted from the start of training.
        global_step: usize,
    },
    /// Input values handed to the library contain NaN or infinity.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// A JSON or TOML document could not be produced or parsed.
    #[error("{what}: {reason}")]
    Format {
        /// What was being (de)serialized.
        what: String,
        /// The parser's or serializer's message.
        reason: String,
    },
    /// Another process is writing to the same output directory.
    #[error(
        "{dir} is in use by another distill process (pid {pid}, see {dir}/.distill.lock); \
         wait for it to finish or choose another {out}", out = Setting::Out
    )]
    Locked {
        /// The output directory.
        dir: PathBuf,
        /// The process holding it.
        pid: u32,
    },
    /// Another process is writing the same file (one soft-target shard of a shared directory).
    #[error(
        "{path} is being written by another distill process ({holder}); let it finish, then run \
         again to verify it"
    )]
    Busy {
        /// The file being written.
        path: PathBuf,
        /// Who holds its lock, as far as is known.
        holder: String,
    },
    /// Drawing a chart failed.
    #[error("plotting {path}: {reason}")]
    Plot {
        /// The chart's output path.
        path: PathBuf,
        /// The drawing backend's message.
        reason: String,
    },
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A configuration error from anything printable.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// A configuration error about one setting's value.
    pub fn setting(setting: Setting, problem: impl Into<String>) -> Self {
        Error::Setting {
            setting,
            problem: problem.into(),
        }
    }

    /// The process exit code for this error, one per cause (documented in `docs/errors.md`):
    /// 2 bad usage or configuration (as clap's own usage errors), 3 bad data, 4 bad model or
    /// models that do not fit the data, 5 input/output, 6 training diverged or produced
    /// non-finite values, 7 output directory or file in use by another process.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Setting { .. } => 2,
            Error::Idx { .. } | Error::Dataset { .. } => 3,
            Error::Checkpoint { .. } | Error::Mismatch(_) => 4,
            Error::Io { .. } | Error::Format { .. } | Error::Plot { .. } => 5,
            Error::Diverged { .. } | Error::NonFinite(_) => 6,
            Error::Locked { .. } | Error::Busy { .. } => 7,
        }
    }
}

/// A setting a user gives, for the messages that name one. The library knows it by its field
/// name (`transfer_fraction`); a front end that calls it something else (the command line's
/// `--transfer-fraction`) installs its names once with [`name_settings`], so that every
/// message speaks the user's language without the library knowing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the field it names
pub enum Setting {
    Alpha,
    AugmentCache,
    BiasAdjust,
    Data,
    DataDir,
    DkdWarmup,
    EpochExamples,
    Impute,
    InputNorm,
    Jitter,
    LearningRate,
    LogitStandardize,
    Loss,
    Mixup,
    OmitClasses,
    OnlyClasses,
    Only,
    Out,
    Patience,
    Shard,
    Strings,
    TeacherOutputs,
    Temperature,
    TestSize,
    TrainSize,
    TransferFraction,
    ValidationSize,
    WarmupEpochs,
}

impl Setting {
    /// The library's name for it: the field of the settings struct that holds it.
    pub fn field(self) -> &'static str {
        match self {
            Setting::Alpha => "alpha",
            Setting::AugmentCache => "augment_cache",
            Setting::BiasAdjust => "bias_adjust",
            Setting::Data => "data",
            Setting::DataDir => "data_dir",
            Setting::DkdWarmup => "dkd_warmup",
            Setting::EpochExamples => "epoch_examples",
            Setting::Impute => "impute",
            Setting::InputNorm => "input_norm",
            Setting::Jitter => "jitter",
            Setting::LearningRate => "learning_rate",
            Setting::LogitStandardize => "logit_standardize",
            Setting::Loss => "loss",
            Setting::Mixup => "mixup",
            Setting::OmitClasses => "omit_classes",
            Setting::OnlyClasses => "only_classes",
            Setting::Only => "only",
            Setting::Out => "out",
            Setting::Patience => "patience",
            Setting::Shard => "shard",
            Setting::Strings => "strings",
            Setting::TeacherOutputs => "teacher_outputs",
            Setting::Temperature => "temperature",
            Setting::TestSize => "test_size",
            Setting::TrainSize => "train_size",
            Setting::TransferFraction => "transfer_fraction",
            Setting::ValidationSize => "validation_size",
            Setting::WarmupEpochs => "warmup_epochs",
        }
    }
}

/// The front end's names for settings, installed at most once.
static NAMES: OnceLock<fn(Setting) -> &'static str> = OnceLock::new();

/// Makes every later message name settings as `names` does (the command line passes its flag
/// names). The first call wins: a process has one front end.
pub fn name_settings(names: fn(Setting) -> &'static str) {
    let _ = NAMES.set(names);
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NAMES.get().map_or(self.field(), |names| names(*self)))
    }
}
