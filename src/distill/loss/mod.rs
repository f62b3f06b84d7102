//! The distillation losses, one file each, behind the [`DistillLoss`] trait the training loop
//! holds: KD (Hinton et al. 2015) in `kd`, DKD in `dkd`, DIST in `dist`, logit standardization
//! in `standardized`; `settings` turns a user's choice of loss into one. Here: the trait and
//! the pieces every loss shares (temperature softmax, cross-entropy to the labels, KL).
//!
//! All take the teacher's log-probabilities at their temperature, as the cache stores them.

mod build;
mod dist;
mod dkd;
mod kd;
mod settings;
mod standardized;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

use crate::error::{Error, Result, Setting};

pub use kd::{DistillConfig, DistillParams, distillation_loss, soft_loss};
pub use settings::{LossKind, LossParams};
pub use standardized::zscore;

/// A loss between a student's logits and its teacher's soft targets (plus the true labels).
/// The training loop holds one of these; KD is [`DistillConfig`], the newer losses (DKD,
/// DIST, standardized logits) are built by [`LossParams::check`].
pub trait DistillLoss: std::fmt::Debug + Send + Sync {
    /// Temperature at which the teacher's log-probabilities are taken (and cached).
    fn temperature(&self) -> f32;
    /// The loss for a batch: `student_logits` `[b, classes]` at T = 1, the teacher's
    /// log-probabilities at [`DistillLoss::temperature`] (constants), labels `[b]`, in
    /// `epoch` (1-based; for losses with a warm-up).
    fn loss(
        &self,
        student_logits: Tensor<2>,
        teacher_log_probs: Tensor<2>,
        labels: Tensor<1, Int>,
        epoch: usize,
    ) -> Tensor<1>;
    /// Short description for reports and progress lines.
    fn describe(&self) -> String;
}

/// Rejects temperatures that are not finite and positive.
pub fn check_temperature(t: f32) -> Result<()> {
    if !t.is_finite() || t <= 0.0 {
        return Err(Error::setting(
            Setting::Temperature,
            format!("must be a finite number above 0, got {t}"),
        ));
    }
    Ok(())
}

/// `softmax(z / T)` over the last dimension of `[batch, classes]` logits.
pub fn soft_targets(logits: Tensor<2>, temperature: f32) -> Tensor<2> {
    softmax(logits.div_scalar(temperature), 1)
}

/// `log softmax(z / T)` over classes.
pub fn log_soft_targets(logits: Tensor<2>, temperature: f32) -> Tensor<2> {
    log_softmax(logits.div_scalar(temperature), 1)
}

/// Host-side temperature softmax of one logit vector, in f64 for reporting.
///
/// ```
/// let cold = distill::distill::softmax_host(&[4.0, 2.0, 0.0], 1.0);
/// let warm = distill::distill::softmax_host(&[4.0, 2.0, 0.0], 20.0);
/// assert!(cold[0] > 0.85 && warm[0] < 0.4); // a high T lifts the small probabilities
/// assert!((warm.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// ```
pub fn softmax_host(logits: &[f32], temperature: f64) -> Vec<f64> {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&z| ((z as f64 - m) / temperature).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Mean cross-entropy of `logits` against integer `labels` at T = 1.
pub fn hard_loss(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, labels.reshape([b, 1]))
        .mean()
        .neg()
}

/// `sum(p * (log p - log q)) / batch`: KL(p || q) with the batch mean of PyTorch's
/// "batchmean"; `p` is given by its logarithm so that zero probabilities stay exact.
fn kl_batchmean(log_p: Tensor<2>, log_q: Tensor<2>) -> Tensor<1> {
    let [b, _] = log_p.dims();
    (log_p.clone().exp() * (log_p - log_q))
        .sum()
        .div_scalar(b as f32)
}
