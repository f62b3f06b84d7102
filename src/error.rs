//! The library's one error type, grouped by cause.
//!
//! Every failure a user can provoke (bad files, bad options, bad checkpoints, a diverging run)
//! is a variant here with a message that names the thing at fault, so the binary can print it
//! as one paragraph and exit non-zero instead of panicking.

use std::path::PathBuf;

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
         wait for it to finish or choose another --out"
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

    /// The process exit code for this error, one per cause (documented in `docs/errors.md`):
    /// 2 bad usage or configuration (as clap's own usage errors), 3 bad data, 4 bad model or
    /// models that do not fit the data, 5 input/output, 6 training diverged or produced
    /// non-finite values, 7 output directory or file in use by another process.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Idx { .. } | Error::Dataset { .. } => 3,
            Error::Checkpoint { .. } | Error::Mismatch(_) => 4,
            Error::Io { .. } | Error::Format { .. } | Error::Plot { .. } => 5,
            Error::Diverged { .. } | Error::NonFinite(_) => 6,
            Error::Locked { .. } | Error::Busy { .. } => 7,
        }
    }
}
