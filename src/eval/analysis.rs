//! What a model has learned beyond its answers: softened probabilities at several
//! temperatures, the similarity between classes in its soft targets, and how closely two
//! models agree.

use serde::{Deserialize, Serialize};

use super::argmax;
use crate::data::Label;
use crate::distill::softmax_host;

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
pub fn class_similarity(logits: &[f32], labels: &[Label], classes: usize, t: f64) -> Vec<Vec<f64>> {
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
mod tests {
    use super::*;

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
        let labels = [0u32, 0, 1, 2];
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
