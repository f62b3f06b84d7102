//! Logit standardization (Sun et al., CVPR 2024): logits z-scored per example before the
//! temperature softmax, as a modifier of KD (here) and DKD (in `dkd`). A z-score removes any
//! per-example shift and positive scale, so z-scoring cached log-probabilities `z / T - c`
//! gives exactly the z-scored teacher logits.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use super::kd::{DistillConfig, soft_loss};
use super::{DistillLoss, hard_loss};

/// Added to the standard deviation in a z-score, as in Sun et al.
const STD_EPS: f32 = 1e-7;

/// `(z - mean) / (eps + std)` per row, with the unbiased standard deviation as Sun et al. use.
pub fn zscore(z: Tensor<2>) -> Tensor<2> {
    let mean = z.clone().mean_dim(1);
    let std = z.clone().var(1).sqrt().add_scalar(STD_EPS);
    (z - mean).div(std)
}

/// KD on z-scored logits (Sun et al.); the cross-entropy stays on the raw logits.
#[derive(Debug)]
pub(super) struct StandardizedKd(pub(super) DistillConfig);

impl DistillLoss for StandardizedKd {
    fn temperature(&self) -> f32 {
        self.0.temperature()
    }
    fn loss(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let (t, a) = (self.0.temperature(), self.0.alpha());
        let teacher = log_softmax(zscore(t_lp).div_scalar(t), 1);
        soft_loss(zscore(s.clone()), teacher, t).mul_scalar(a) + hard_loss(s, y).mul_scalar(1.0 - a)
    }
    fn describe(&self) -> String {
        format!("{} with logit standardization", self.0.describe())
    }
}
