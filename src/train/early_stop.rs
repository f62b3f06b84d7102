//! Keeping the best epoch on validation and stopping after `patience` epochs without
//! improvement. The best weights are written beside the model (`best.safetensors`) as they
//! appear, so that a resumed run finds them again and ends exactly as the uninterrupted one.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::metrics::EpochMetrics;
use crate::data::Split;
use crate::error::{Error, Result, Setting};
use crate::fsutil::write_atomic;
use crate::model::Network;

/// File of the best weights so far, in the model directory.
pub const BEST_FILE: &str = "best.safetensors";

/// The best epoch so far of a run with a patience.
pub(super) struct EarlyStop {
    patience: usize,
    best: Option<(usize, usize)>,
    dir: PathBuf,
}

impl EarlyStop {
    /// The tracker of a run with `patience` (`None` without one), refusing a patience without
    /// a `validation` split to judge epochs on.
    pub fn start(
        patience: Option<usize>,
        validation: &Split,
        dir: &Path,
        history: &[EpochMetrics],
    ) -> Result<Option<EarlyStop>> {
        match patience {
            Some(_) if validation.is_empty() => Err(Error::setting(
                Setting::Patience,
                "keeps the best epoch on validation errors and needs a validation split",
            )),
            Some(p) => Ok(Some(EarlyStop::new(p, dir, history))),
            None => Ok(None),
        }
    }

    /// Tracks a run of `dir` stopping after `patience` epochs without fewer validation errors,
    /// picking up the epochs of `history` that a resumed run already trained.
    pub fn new(patience: usize, dir: &Path, history: &[EpochMetrics]) -> EarlyStop {
        let best = history
            .iter()
            .filter_map(|m| m.validation().map(|e| (e, m.epoch)))
            .min_by_key(|&(e, epoch)| (e, epoch));
        EarlyStop {
            patience,
            best,
            dir: dir.to_path_buf(),
        }
    }

    /// Records `epoch`'s validation errors (the weights `net`); true when training should
    /// stop.
    pub fn observe(&mut self, epoch: usize, errors: usize, net: &Network) -> Result<bool> {
        if self.best.is_none_or(|(e, _)| errors < e) {
            self.best = Some((errors, epoch));
            write_atomic(&self.dir.join(BEST_FILE), &net.to_bytes()?)?;
        }
        Ok(self.best.is_some_and(|(_, b)| epoch - b >= self.patience))
    }

    /// The best epoch so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(_, epoch)| epoch)
    }

    /// At the end of a run with a patience: the best epoch and its weights, written as the
    /// model's own (`model.safetensors`); `None` without a patience.
    pub fn keep_best(
        early: Option<&EarlyStop>,
        device: &Device,
    ) -> Result<Option<(usize, Network)>> {
        let Some(e) = early else {
            return Ok(None);
        };
        let best = e.best(device)?;
        if let Some((_, net)) = &best {
            net.save(&e.dir)?;
        }
        Ok(best)
    }

    /// The best epoch and its weights (read back from `best.safetensors`), or `None` before
    /// any epoch.
    fn best(&self, device: &Device) -> Result<Option<(usize, Network)>> {
        match self.best {
            None => Ok(None),
            Some((_, epoch)) => {
                let path = self.dir.join(BEST_FILE);
                let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
                let net = Network::from_bytes(&bytes, device)
                    .map_err(|reason| Error::Checkpoint { path, reason })?;
                Ok(Some((epoch, net)))
            }
        }
    }
}
