//! Where a training run starts: after the epochs an interrupted run saved, at the beginning, or
//! nowhere when the run already finished.

use burn::tensor::Device;

use super::early_stop::EarlyStop;
use super::metrics::{EpochMetrics, metrics_path, read_metrics};
use super::resume;
use super::run::{RunOutput, Trained};
use super::settings::TrainConfig;
use super::stepper::Stepper;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::Network;

/// Resuming a run that already finished hands back its model untouched, and removes the
/// resumable state that a kill between marking it finished and removing it left behind.
pub(super) fn already_finished(
    output: &RunOutput,
    patience: Option<usize>,
    device: &Device,
) -> Result<Trained> {
    let dir = &output.dir;
    if !output.checkpoints.keep {
        resume::clear(dir)?;
    }
    let network = Network::load(dir, device)?;
    let history = read_metrics(dir);
    let seconds = history.last().map_or(0.0, |m| m.elapsed_seconds);
    if output.progress {
        eprintln!(
            "{}: already finished in {}; not retrained",
            output.label,
            dir.display()
        );
    }
    let best_epoch = patience.and_then(|p| EarlyStop::new(p, dir, &history).best_epoch());
    Ok(Trained {
        network,
        history,
        seconds,
        best_epoch,
    })
}

/// Where a run starts: after the epochs an interrupted run saved, or at the beginning.
pub(super) struct Start {
    /// The model and optimizer state to step from.
    pub stepper: Stepper,
    /// The first epoch still to run (1-based).
    pub first_epoch: usize,
    /// Seconds of training the saved epochs took.
    pub elapsed_before: f64,
    /// The saved epochs' metrics.
    pub history: Vec<EpochMetrics>,
}

impl Start {
    /// Resumes from the output's saved state when it belongs to this run, else starts afresh.
    pub fn new(
        network: &Network,
        config: &TrainConfig,
        device: &Device,
        output: &RunOutput,
        run_id: &str,
    ) -> Result<Start> {
        let dir = &output.dir;
        let resumed = if output.checkpoints.resume {
            resume::load(dir, run_id, device)?
        } else {
            resume::clear(dir)?;
            None
        };
        match resumed {
            Some((state, saved)) => Start::resumed(&state, &saved, config, device, output),
            None => Start::afresh(network, config, device, output),
        }
    }

    fn resumed(
        state: &resume::ResumeState,
        saved: &Network,
        config: &TrainConfig,
        device: &Device,
        output: &RunOutput,
    ) -> Result<Start> {
        let dir = &output.dir;
        let metrics_path = metrics_path(dir);
        let optimizer = resume::ResumeState::optimizer(dir, state.epoch);
        let stepper = Stepper::resume(saved, config, device, &state.param_ids, &optimizer)?;
        // Epochs after the saved state (a kill between the metrics line and the state)
        // are dropped: they are trained again.
        // The lines are kept as written: parsing and printing floats again could move
        // them by a unit in the last place.
        let text = std::fs::read_to_string(&metrics_path).unwrap_or_default();
        let kept: Vec<&str> = text.lines().take(state.epoch).collect();
        let mut history = read_metrics(dir);
        history.truncate(state.epoch);
        if kept.len() != state.epoch || history.len() != state.epoch {
            return Err(Error::Checkpoint {
                path: metrics_path.clone(),
                reason: format!(
                    "holds {} readable epochs, the resumable state {}",
                    history.len(),
                    state.epoch
                ),
            });
        }
        write_atomic(&metrics_path, (kept.join("\n") + "\n").as_bytes())?;
        if output.progress {
            eprintln!("{}: resuming after epoch {}", output.label, state.epoch);
        }
        Ok(Start {
            stepper,
            first_epoch: state.epoch + 1,
            elapsed_before: state.elapsed_seconds,
            history,
        })
    }

    fn afresh(
        network: &Network,
        config: &TrainConfig,
        device: &Device,
        output: &RunOutput,
    ) -> Result<Start> {
        if output.checkpoints.resume && output.progress {
            eprintln!(
                "{}: nothing to resume in {}; training from the start",
                output.label,
                output.dir.display()
            );
        }
        let metrics_path = metrics_path(&output.dir);
        if metrics_path.exists() {
            std::fs::remove_file(&metrics_path)
                .map_err(|e| Error::io("removing", &metrics_path, e))?;
        }
        Ok(Start {
            stepper: Stepper::new(network, config, device),
            first_epoch: 1,
            elapsed_before: 0.0,
            history: Vec::new(),
        })
    }
}
