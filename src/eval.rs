//! Measuring models: test errors overall and per class, confusion, negative log-likelihood,
//! agreement between models, and inference latency.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::distill::softmax_host;
use crate::error::{Error, Result};
use crate::model::Predictor;

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
            "the model expects {} inputs but the images have {} pixels",
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
    let out: Tensor<2> = net.logits(&dev.images);
    out.into_data()
        .try_to_vec()
        .map_err(|e| Error::NonFinite(format!("model output: {e:?}")))
}

/// Scores host-side logits `[n, classes]` against labels.
pub fn score(logits: &[f32], labels: &[u8], classes: usize) -> Evaluation {
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
    check_compatible(net, split, classes)?;
    Ok(score(&logits(net, split, device)?, &split.labels, classes))
}

/// Median microseconds per example for batch-1 inference over `reps` single images.
pub fn latency_us_batch1(net: &dyn Predictor, split: &Split, device: &Device, reps: usize) -> f64 {
    let dev = split.head(reps.max(1)).to_device(device);
    let mut times = Vec::with_capacity(dev.len);
    // Warm-up: first calls allocate buffers and spin up thread pools.
    for i in 0..dev.len.min(10) {
        let _ = net.logits(&dev.images.clone().slice(i..i + 1)).into_data();
    }
    for i in 0..dev.len {
        let x = dev.images.clone().slice(i..i + 1);
        let t = Instant::now();
        let _ = net.logits(&x).into_data();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
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
    fn median_handles_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}

/// Picks the bias shift for `classes` (those a transfer set lacked) that minimizes errors on
/// validation logits, searching `0..=max` in steps of `step`; ties go to the smallest shift.
/// Returns `(shift, validation errors at that shift)`.
pub fn choose_bias_shift(
    logits: &[f32],
    labels: &[u8],
    n_classes: usize,
    classes: &[usize],
    max: f32,
    step: f32,
) -> (f32, usize) {
    let mut best = (0.0f32, usize::MAX);
    let steps = (max / step).round() as usize;
    let mut row = vec![0f32; n_classes];
    for k in 0..=steps {
        let delta = k as f32 * step;
        let mut errors = 0;
        for (r, &y) in logits.chunks_exact(n_classes).zip(labels) {
            row.copy_from_slice(r);
            for &c in classes {
                row[c] += delta;
            }
            errors += usize::from(argmax(&row) != y as usize);
        }
        if errors < best.1 {
            best = (delta, errors);
        }
    }
    best
}

/// The softmax of one logit vector at each temperature: `probs[k][c]` for temperature `k`.
pub fn soften(logits: &[f32], temperatures: &[f64]) -> Vec<Vec<f64>> {
    temperatures
        .iter()
        .map(|&t| softmax_host(logits, t))
        .collect()
}

/// Classes other than `label`, most probable first, under `probs`.
pub fn ranking_without(probs: &[f64], label: usize) -> Vec<usize> {
    let mut others: Vec<usize> = (0..probs.len()).filter(|&c| c != label).collect();
    others.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    others
}

/// The model's learned similarity between classes: row `i` is the mean of its soft targets at
/// temperature `t` over the examples whose true class is `i` (each row sums to 1; a class
/// with no example gets a row of zeros).
pub fn class_similarity(logits: &[f32], labels: &[u8], classes: usize, t: f64) -> Vec<Vec<f64>> {
    let mut m = vec![vec![0.0; classes]; classes];
    let mut counts = vec![0usize; classes];
    for (row, &y) in logits.chunks_exact(classes).zip(labels) {
        for (acc, p) in m[y as usize].iter_mut().zip(softmax_host(row, t)) {
            *acc += p;
        }
        counts[y as usize] += 1;
    }
    for (row, &n) in m.iter_mut().zip(&counts) {
        if n > 0 {
            row.iter_mut().for_each(|v| *v /= n as f64);
        }
    }
    m
}

/// The `top` most similar pairs of distinct classes by the symmetric score
/// `(m[i][j] + m[j][i]) / 2`, highest first.
pub fn similar_pairs(m: &[Vec<f64>], top: usize) -> Vec<(usize, usize, f64)> {
    let mut pairs = Vec::new();
    for (i, row) in m.iter().enumerate() {
        for (j, other) in m.iter().enumerate().skip(i + 1) {
            pairs.push((i, j, (row[j] + other[i]) / 2.0));
        }
    }
    pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
    pairs.truncate(top);
    pairs
}

/// How closely model B follows model A on the same examples.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Agreement {
    /// Mean over examples of `KL(A_T || B_T)`, summed over classes.
    pub mean_kl: f64,
    /// Fraction of examples where both predict the same class at T = 1.
    pub top1_agreement: f64,
}

/// Agreement between two models' logits (`[n, classes]` each) at temperature `t`.
pub fn agreement(a: &[f32], b: &[f32], classes: usize, t: f64) -> Agreement {
    let n = (a.len() / classes).max(1);
    let mut kl = 0.0;
    let mut same = 0usize;
    for (ra, rb) in a.chunks_exact(classes).zip(b.chunks_exact(classes)) {
        let (p, q) = (softmax_host(ra, t), softmax_host(rb, t));
        kl += p
            .iter()
            .zip(&q)
            .map(|(&pi, &qi)| {
                if pi > 0.0 {
                    pi * (pi.ln() - qi.max(1e-300).ln())
                } else {
                    0.0
                }
            })
            .sum::<f64>();
        same += usize::from(argmax(ra) == argmax(rb));
    }
    Agreement {
        mean_kl: kl / n as f64,
        top1_agreement: same as f64 / n as f64,
    }
}

#[cfg(test)]
mod analysis_tests {
    use super::*;

    #[test]
    fn bias_shift_recovers_a_suppressed_class() {
        // Class 2 is always 1.5 below where it should win: a shift of about 1.5..2 fixes it
        // without breaking the other examples (class 0 leads class 2 by 3).
        let logits = [
            0.0f32, -5.0, -1.5, 0.0, -5.0, -1.0, 0.0, 4.0, 1.0, 3.0, -2.0, 0.0,
        ];
        let labels = [2u8, 2, 1, 0];
        let (delta, errors) = choose_bias_shift(&logits, &labels, 3, &[2], 5.0, 0.25);
        assert_eq!(errors, 0);
        assert!((1.5..3.0).contains(&delta), "{delta}");
        assert_eq!(choose_bias_shift(&logits, &labels, 3, &[2], 1.0, 0.25).1, 2);
    }

    #[test]
    fn soften_sums_to_one_and_entropy_rises_with_t() {
        let z = [8.0f32, 1.0, -2.0, 3.0];
        let ts = [1.0, 2.0, 5.0, 20.0];
        let probs = soften(&z, &ts);
        let entropy = |p: &Vec<f64>| -p.iter().map(|v| v * v.ln()).sum::<f64>();
        for p in &probs {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        for w in probs.windows(2) {
            assert!(entropy(&w[1]) > entropy(&w[0]));
        }
        assert_eq!(ranking_without(&probs[0], 0), vec![3, 1, 2]);
    }

    #[test]
    fn similarity_rows_sum_to_one_and_pairs_are_ranked() {
        // Class 0 examples lean to class 2; class 1 examples are confident.
        let logits = [
            3.0f32, 0.0, 2.0, 3.0, -1.0, 2.5, 0.0, 5.0, 0.0, 1.0, 0.0, 4.0,
        ];
        let labels = [0u8, 0, 1, 2];
        let m = class_similarity(&logits, &labels, 3, 2.0);
        for row in &m {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        assert_eq!(similar_pairs(&m, 1)[0].0..=similar_pairs(&m, 1)[0].1, 0..=2);
        let same = agreement(&logits, &logits, 3, 4.0);
        assert!(same.mean_kl.abs() < 1e-12 && same.top1_agreement == 1.0);
        let flipped: Vec<f32> = logits.iter().map(|v| -v).collect();
        let diff = agreement(&logits, &flipped, 3, 1.0);
        assert!(diff.mean_kl > 0.1 && diff.top1_agreement < 0.5);
    }
}
