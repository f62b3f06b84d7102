//! Stage 6, eval: measuring models. Test errors overall and per class, confusion, negative
//! log-likelihood, latency; what a model learned beyond its answers; the bias adjustment chosen
//! on validation errors; and one model's line of a report.
//!
//! Owns: every number computed about a trained model.
//! May use: `compute`, `data`, `model`, `distill`, `train` and the foundation modules.

mod analysis;
mod bias;
mod model_report;

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::compute::PlainMlp;
use crate::data::{Label, Split};
use crate::distill::softmax_host;
use crate::error::{Error, Result, Setting};
use crate::model::Predictor;

pub use analysis::{
    Agreement, agreement, class_similarity, ranking_without, similar_pairs, soften,
};
pub use bias::{BiasAdjust, BiasAdjustReport, adjust_bias, check_bias_adjust, choose_bias_shift};
pub use model_report::{ModelReport, mean_report, model_report};

/// A model's results on one labelled split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Misclassified examples.
    pub errors: usize,
    /// Examples evaluated.
    pub examples: usize,
    /// Errors per true class.
    pub class_errors: Vec<usize>,
    /// Examples per true class.
    pub class_examples: Vec<usize>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Mean negative log-likelihood of the true class at T = 1.
    pub nll: f64,
}

impl Evaluation {
    /// Error rate in percent.
    pub fn error_percent(&self) -> f64 {
        error_percent(self.errors, self.examples)
    }
}

/// `errors` as a percentage of `examples` (0 when there are none).
pub fn error_percent(errors: usize, examples: usize) -> f64 {
    100.0 * errors as f64 / examples.max(1) as f64
}

/// Checks that `net` accepts the images of `split` and that its classes cover the labels.
pub fn check_compatible(net: &dyn Predictor, split: &Split, classes: usize) -> Result<()> {
    if net.inputs() != split.pixels {
        return Err(Error::Mismatch(format!(
            "the model expects {} images ({} values each) but the images have {} values each",
            net.shape(),
            net.inputs(),
            split.pixels
        )));
    }
    if net.classes() != classes {
        return Err(Error::Mismatch(format!(
            "the model has {} classes but the dataset has {classes}",
            net.classes()
        )));
    }
    Ok(())
}

/// Logits of `net` for every example of `split`, row-major `[len, classes]` on the host.
pub fn logits(net: &dyn Predictor, split: &Split, device: &Device) -> Result<Vec<f32>> {
    let dev = split.to_device(device);
    let out: Tensor<2> = net.logits(&dev.images)?;
    out.into_data()
        .try_to_vec()
        .map_err(|e| Error::NonFinite(format!("model output: {e:?}")))
}

/// Scores host-side logits `[n, classes]` against labels.
pub fn score(logits: &[f32], labels: &[Label], classes: usize) -> Evaluation {
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut nll = 0.0;
    for (row, &y) in logits.chunks_exact(classes).zip(labels) {
        let pred = argmax(row);
        confusion[y as usize][pred] += 1;
        nll -= softmax_host(row, 1.0)[y as usize].max(1e-300).ln();
    }
    let class_examples: Vec<usize> = confusion.iter().map(|r| r.iter().sum()).collect();
    let class_errors: Vec<usize> = confusion
        .iter()
        .enumerate()
        .map(|(c, r)| r.iter().sum::<usize>() - r[c])
        .collect();
    Evaluation {
        errors: class_errors.iter().sum(),
        examples: labels.len(),
        class_errors,
        class_examples,
        confusion,
        nll: nll / labels.len().max(1) as f64,
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Evaluates `net` on `split` (a dataset with `classes` classes).
pub fn evaluate(
    net: &dyn Predictor,
    split: &Split,
    classes: usize,
    device: &Device,
) -> Result<Evaluation> {
    Ok(evaluate_timed(net, split, classes, device)?.0)
}

/// [`evaluate`], with the wall-clock microseconds per example of its batched forward pass:
/// what inference costs at scale, where a model's dense arithmetic counts (at batch 1 the
/// serving path skips zero inputs, and a sparse teacher can be as quick as its student).
pub fn evaluate_timed(
    net: &dyn Predictor,
    split: &Split,
    classes: usize,
    device: &Device,
) -> Result<(Evaluation, f64)> {
    check_compatible(net, split, classes)?;
    let start = Instant::now();
    let logits = logits(net, split, device)?;
    let us = 1e6 * start.elapsed().as_secs_f64() / split.len().max(1) as f64;
    Ok((score(&logits, &split.labels, classes), us))
}

/// A warning when a teacher's errors on held-out data are near chance (at least 90% of the
/// error rate of guessing among `classes`), which on a file from elsewhere most often means
/// the pixels reach it otherwise than it was trained on them; `None` for a teacher that learned,
/// and for fewer than 5 held-out images per class, too few to tell.
pub fn teacher_warning(e: &Evaluation, classes: usize) -> Option<String> {
    let chance = 100.0 * (1.0 - 1.0 / classes.max(1) as f64);
    (e.examples >= 5 * classes && e.error_percent() >= 0.9 * chance).then(|| {
        format!(
            "warning: the teacher is near chance on the validation set ({:.1}% errors; \
             guessing makes {chance:.1}%): it has nothing to teach. A teacher from elsewhere \
             may number the classes otherwise than the data, or expect other pixels \
             ({} MEAN,STD as it was trained; 0,0.00392157 for 0-255 pixels)",
            e.error_percent(),
            Setting::InputNorm
        )
    })
}

/// Median microseconds per example for batch-1 inference over `reps` single images.
pub fn latency_us_batch1(net: &dyn Predictor, split: &Split, device: &Device, reps: usize) -> f64 {
    let head = split.head(reps.max(1));
    if let Some(plain) = net.serving_path() {
        return latency_plain(&plain, &head);
    }
    let dev = head.to_device(device);
    let mut times = Vec::with_capacity(dev.len);
    // Warm-up: first calls allocate buffers and spin up thread pools.
    for i in 0..dev.len.min(10) {
        let _ = net
            .logits(&dev.images.clone().slice(i..i + 1))
            .map(Tensor::into_data);
    }
    for i in 0..dev.len {
        let x = dev.images.clone().slice(i..i + 1);
        let t = Instant::now();
        let _ = net.logits(&x).map(Tensor::into_data);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut times)
}

/// Median microseconds of [`PlainMlp::logits`] over the images of `split`, after a warm-up.
fn latency_plain(plain: &PlainMlp, split: &Split) -> f64 {
    let floats = split.floats();
    let images: Vec<&[f32]> = floats.chunks(split.pixels.max(1)).collect();
    for image in images.iter().take(10) {
        let _ = plain.logits(image);
    }
    let mut times: Vec<f64> = images
        .iter()
        .map(|image| {
            let t = Instant::now();
            let _ = plain.logits(image);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&mut times)
}

/// Median of a slice (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_counts_errors_per_class_and_confusion() {
        // Three examples, 3 classes: predictions 0, 2, 2 for labels 0, 1, 2.
        let logits = [5.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0];
        let e = score(&logits, &[0, 1, 2], 3);
        assert_eq!(e.errors, 1);
        assert_eq!(e.class_errors, vec![0, 1, 0]);
        assert_eq!(e.confusion[1][2], 1);
        assert_eq!(e.class_examples, vec![1, 1, 1]);
        assert!(e.nll > 0.0);
        assert!((e.error_percent() - 100.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_teacher_is_near_chance_from_nine_tenths_of_guessings_error_rate() {
        let with = |errors, classes| {
            let e = Evaluation {
                errors,
                examples: 100,
                ..score(&[], &[], classes)
            };
            teacher_warning(&e, classes).is_some()
        };
        // Ten classes: guessing errs 90% of the time, so 81% is near chance, 80% is not.
        assert!(with(81, 10) && !with(80, 10));
        // Two classes: guessing errs 50%; 45% is near chance.
        assert!(with(45, 2) && !with(44, 2));
        // 100 images cannot tell for 21 classes.
        assert!(!with(100, 21) && with(100, 20));
    }

    #[test]
    fn median_handles_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
