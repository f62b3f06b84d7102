//! One model of a recipe: its architecture and training as a config gives them, checked, and
//! the call that trains it from scratch into a model directory.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::run::{RunOutput, TrainData, Trained, train};
use super::settings::{RngStream, TrainConfig, TrainParams};
use crate::data::Splits;
use crate::distill::Objective;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::{Dropout, ModelConfig, ModelSpec, Network, clear_complete};

/// Architecture and training of one model in a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleParams {
    /// Architecture (`mlp:...`).
    pub spec: String,
    /// Input dropout while training.
    pub input_dropout: f64,
    /// Hidden dropout while training.
    pub hidden_dropout: f64,
    /// Optimization settings.
    pub train: TrainParams,
}

/// A role whose spec parsed and whose training settings passed their checks.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// Parsed architecture.
    pub spec: ModelSpec,
    /// Dropout while training.
    pub dropout: Dropout,
    /// Checked training settings.
    pub train: TrainConfig,
}

impl RoleParams {
    /// Parses the spec and checks dropout and training settings.
    pub fn check(&self) -> Result<RoleConfig> {
        let spec: ModelSpec = self.spec.parse()?;
        let dropout = Dropout {
            input: self.input_dropout,
            hidden: self.hidden_dropout,
        }
        .check()?;
        let mut train = self.train.clone();
        train.clip_norm = train.clip_norm.or(spec.default_clip_norm());
        Ok(RoleConfig {
            spec,
            dropout,
            train: train.check()?,
        })
    }
}

impl RoleConfig {
    /// The role as a config file records it (the inverse of [`RoleParams::check`]).
    pub fn params(&self) -> RoleParams {
        RoleParams {
            spec: self.spec.to_string(),
            input_dropout: self.dropout.input,
            hidden_dropout: self.dropout.hidden,
            train: self.train.settings().clone(),
        }
    }

    /// The same role with other training settings, checked.
    pub fn with_train(&self, settings: TrainParams) -> Result<RoleConfig> {
        Ok(RoleConfig {
            train: settings.check()?,
            ..self.clone()
        })
    }
}

/// A role's config as recorded beside its model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RoleRecord {
    model: RoleParams,
    /// What the model learned from (`Objective::describe`): the loss and its hyperparameters
    /// are part of how the model was made.
    #[serde(default)]
    objective: String,
    /// The build that trained it (`distill`'s and burn's versions, the commit): a model
    /// directory made by `train` or `distill` has no report to say it.
    #[serde(default)]
    built_by: String,
    /// The command line of the process that trained it: a `distill` or `train` run has no
    /// report, and this is where its teacher and data are named.
    #[serde(default)]
    command: Vec<String>,
}

/// Trains one model from scratch on `splits` towards `objective`, into the model directory
/// `dir` (`config.toml` first, then weights and `metrics.jsonl` every epoch, then the
/// completion marker).
pub fn train_role(
    role: &RoleConfig,
    splits: &Splits,
    objective: &Objective,
    device: &Device,
    out: &RunOutput,
) -> Result<Trained> {
    let dir = out.dir.as_path();
    if splits.dataset.is_table() && !matches!(role.spec, ModelSpec::Mlp { .. }) {
        return Err(Error::config(
            "a CNN needs images and this data is a table of features: use an MLP, such as \
             mlp:128,128",
        ));
    }
    let config = ModelConfig::new(
        &role.spec,
        splits.dataset.shape,
        splits.dataset.classes,
        role.dropout,
    )?
    .with_standardize(splits.dataset.standardize.clone())?;
    device.seed(RngStream::Init.seed(role.train.settings().seed));
    let network = Network::init(config, device);
    // The config goes first and the completion marker (written by `train`, which removes an
    // old one before it changes any weight) last, so a killed run never leaves new weights
    // beside an old config looking finished.
    let record = RoleRecord {
        model: role.params(),
        objective: objective.describe(),
        built_by: crate::compute::build_id(),
        command: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    };
    let toml = toml::to_string_pretty(&record).map_err(|e| Error::Format {
        what: "config.toml".into(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    if !out.checkpoints.resume {
        // A resumed run keeps a finished model's marker (its config is the same); a fresh one
        // must not leave an old marker beside the new config.
        clear_complete(dir)?;
    }
    write_atomic(&dir.join("config.toml"), toml.as_bytes())?;
    let data = TrainData {
        train: &splits.train,
        validation: &splits.validation,
        shape: splits.dataset.shape,
    };
    train(network, data, objective, &role.train, device, out)
}
