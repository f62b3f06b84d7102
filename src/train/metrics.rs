//! Per-epoch metrics: one JSON line per epoch in a model directory's `metrics.jsonl`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Metrics of one epoch, one line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Errors on the validation split (0 when there is none).
    pub validation_errors: usize,
    /// Size of the validation split (0 when the run fits all training examples).
    pub validation_examples: usize,
    /// Learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Wall-clock seconds since training started.
    pub elapsed_seconds: f64,
}

impl EpochMetrics {
    /// Validation errors, or `None` when the run held out no validation split (it then
    /// records 0 of 0).
    pub fn validation(&self) -> Option<usize> {
        (self.validation_examples > 0).then_some(self.validation_errors)
    }
}

/// Path of a model directory's metrics file.
pub fn metrics_path(dir: &Path) -> PathBuf {
    dir.join("metrics.jsonl")
}

/// Reads a model directory's `metrics.jsonl` (empty if absent or unreadable).
pub fn read_metrics(dir: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Training time, last validation errors and history of a model trained earlier, from its
/// `metrics.jsonl` (0 s and no validation errors when it has none).
pub fn earlier_training(dir: &Path) -> (f64, Option<usize>, Vec<EpochMetrics>) {
    let history = read_metrics(dir);
    let last = history.last();
    let seconds = last.map_or(0.0, |m| m.elapsed_seconds);
    let val = last.and_then(EpochMetrics::validation);
    (seconds, val, history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_without_a_validation_split_report_none() {
        let m = |errors, examples| EpochMetrics {
            epoch: 1,
            train_loss: 0.5,
            validation_errors: errors,
            validation_examples: examples,
            learning_rate: 0.1,
            elapsed_seconds: 1.0,
        };
        assert_eq!(m(0, 0).validation(), None);
        assert_eq!(m(0, 100).validation(), Some(0));
        assert_eq!(m(7, 100).validation(), Some(7));
    }
}
