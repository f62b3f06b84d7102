//! One model's line in a report: test errors overall and per class, confusion, NLL, size,
//! training time, latency and silent units.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{evaluate_timed, latency_us_batch1};
use crate::data::Splits;
use crate::error::{Result, Setting};
use crate::model::{ModelSpec, Predictor};

/// One model's results in a report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelReport {
    /// Architecture spec (`mlp:...`), or a description for ensembles.
    pub spec: String,
    /// Test-set errors.
    pub test_errors: usize,
    /// Test examples evaluated.
    pub test_examples: usize,
    /// Test errors per true class.
    pub class_errors: Vec<usize>,
    /// Test examples per true class.
    pub class_examples: Vec<usize>,
    /// Weights and biases.
    pub params: usize,
    /// Wall-clock training seconds (0 when the model was reused).
    pub train_seconds: f64,
    /// Median batch-1 inference time per example in microseconds.
    pub infer_us_per_example: f64,
    /// Wall-clock microseconds per example of the batched forward pass over the test set
    /// ([`super::evaluate_timed`]); 0 in reports written before it was recorded.
    #[serde(default)]
    pub batched_us_per_example: f64,
    /// Mean negative log-likelihood on the test set.
    pub test_nll: f64,
    /// Validation errors after the last epoch, if trained here.
    pub validation_errors: Option<usize>,
    /// `confusion[true][predicted]` on the test set.
    pub confusion: Vec<Vec<usize>>,
    /// Where the model directory is.
    pub dir: String,
    /// ReLU units per hidden layer that never fire on the first 5,000 training images (empty
    /// for an ensemble or a mean of models). Many of them mean capacity lost to oversized
    /// steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent_units: Vec<usize>,
}

impl ModelReport {
    /// A warning for each hidden layer where at least a tenth of the units never fire (see
    /// `silent_units`), naming the remedy.
    pub fn silent_unit_warnings(&self, name: &str) -> Vec<String> {
        let Ok(spec) = self.spec.parse::<ModelSpec>() else {
            return Vec::new();
        };
        let convs = match &spec {
            ModelSpec::Cnn { channels, .. } => channels.len(),
            ModelSpec::Mlp { .. } => 0,
        };
        spec.hidden_widths()
            .iter()
            .zip(&self.silent_units)
            .enumerate()
            .filter(|(_, (width, silent))| **silent * 10 >= **width)
            .map(|(layer, (width, silent))| {
                let what = match layer < convs {
                    true => format!("channels of convolution block {}", layer + 1),
                    false => format!("ReLU units of hidden layer {}", layer + 1 - convs),
                };
                format!(
                    "{name}: {silent} of the {width} {what} never fire \
                     on the training images (capacity lost, usually to oversized steps: a lower \
                     learning rate ({}) prevents it, a warm-up ({}) helps)",
                    Setting::LearningRate,
                    Setting::WarmupEpochs
                )
            })
            .collect()
    }
}

/// Evaluates a trained model for the report.
pub fn model_report(
    net: &dyn Predictor,
    dir: &Path,
    splits: &Splits,
    device: &Device,
    train_seconds: f64,
    validation_errors: Option<usize>,
) -> Result<ModelReport> {
    let (e, batched_us_per_example) =
        evaluate_timed(net, &splits.test, splits.dataset.classes, device)?;
    Ok(ModelReport {
        spec: net.describe(),
        test_errors: e.errors,
        test_examples: e.examples,
        class_errors: e.class_errors,
        class_examples: e.class_examples,
        params: net.params(),
        train_seconds,
        infer_us_per_example: latency_us_batch1(net, &splits.test, device, 200),
        batched_us_per_example,
        test_nll: e.nll,
        validation_errors,
        confusion: e.confusion,
        dir: dir.display().to_string(),
        silent_units: net.silent_units(&splits.probe_images(device)),
    })
}

/// The mean of several models' reports (integer counts rounded): the "single model" of an
/// ensemble experiment.
pub fn mean_report(reports: &[ModelReport]) -> ModelReport {
    let n = reports.len().max(1) as f64;
    let mean = |f: &dyn Fn(&ModelReport) -> f64| reports.iter().map(f).sum::<f64>() / n;
    let mean_u = |f: &dyn Fn(&ModelReport) -> usize| {
        (reports.iter().map(f).sum::<usize>() as f64 / n).round() as usize
    };
    let first = &reports[0];
    let classes = first.class_errors.len();
    ModelReport {
        spec: format!("mean of {} x {}", reports.len(), first.spec),
        test_errors: mean_u(&|r| r.test_errors),
        test_examples: first.test_examples,
        class_errors: (0..classes)
            .map(|c| mean_u(&|r| r.class_errors[c]))
            .collect(),
        class_examples: first.class_examples.clone(),
        params: first.params,
        train_seconds: mean(&|r| r.train_seconds),
        infer_us_per_example: mean(&|r| r.infer_us_per_example),
        batched_us_per_example: mean(&|r| r.batched_us_per_example),
        test_nll: mean(&|r| r.test_nll),
        validation_errors: None,
        confusion: (0..classes)
            .map(|i| {
                (0..classes)
                    .map(|j| mean_u(&|r| r.confusion[i][j]))
                    .collect()
            })
            .collect(),
        dir: first.dir.clone(),
        silent_units: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_unit_warnings_name_layers_with_a_tenth_or_more_silent() {
        let report = |spec: &str, silent_units: Vec<usize>| ModelReport {
            spec: spec.into(),
            test_errors: 0,
            test_examples: 1,
            class_errors: vec![0],
            class_examples: vec![1],
            params: 1,
            train_seconds: 0.0,
            infer_us_per_example: 0.0,
            batched_us_per_example: 0.0,
            test_nll: 0.0,
            validation_errors: None,
            confusion: vec![vec![1]],
            dir: String::new(),
            silent_units,
        };
        let w = report("mlp:800,800", vec![440, 79]).silent_unit_warnings("distilled");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("distilled: 440 of the 800 ReLU units of hidden layer 1"),
            "{w:?}"
        );
        assert_eq!(
            report("mlp:800,800", vec![0, 80])
                .silent_unit_warnings("s")
                .len(),
            1
        );
        let w = report("cnn:8,16/32", vec![0, 2, 4]).silent_unit_warnings("t");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("2 of the 16 channels of convolution block 2"),
            "{w:?}"
        );
        assert!(
            w[1].contains("4 of the 32 ReLU units of hidden layer 1"),
            "{w:?}"
        );
        assert!(
            report("mlp:800,800", vec![79, 0])
                .silent_unit_warnings("s")
                .is_empty()
        );
        assert!(
            report("ensemble of 2 x mlp:8", vec![])
                .silent_unit_warnings("e")
                .is_empty()
        );
    }
}
