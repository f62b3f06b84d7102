//! DKD, decoupled KD (Zhao et al., CVPR 2022): the KL split into a target-class part (weight
//! alpha) and a non-target part (weight beta), with a linear warm-up of both.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

use super::settings::LossParams;
use super::standardized::zscore;
use super::{DistillLoss, hard_loss, kl_batchmean};

/// DKD with checked settings.
#[derive(Debug)]
pub(super) struct Dkd(pub(super) LossParams);

impl DistillLoss for Dkd {
    fn temperature(&self) -> f32 {
        self.0.temperature
    }

    fn loss(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>, epoch: usize) -> Tensor<1> {
        let c = &self.0;
        let t = c.temperature;
        let [_, classes] = s.dims();
        let (s_in, t_lp) = if c.standardize {
            let teacher = log_softmax(zscore(t_lp).div_scalar(t), 1);
            (zscore(s.clone()), teacher)
        } else {
            (s.clone(), t_lp)
        };
        let gt = y.clone().one_hot(classes).float();
        let s_t = s_in.div_scalar(t);
        // Target-class KD: KL between the binary distributions (p_target, 1 - p_target).
        let ps = softmax(s_t.clone(), 1);
        let binary = |p: Tensor<2>| {
            let target = (p.clone() * gt.clone()).sum_dim(1);
            let other = (p * gt.clone().neg().add_scalar(1.0)).sum_dim(1);
            Tensor::cat(vec![target, other], 1).clamp_min(1e-30).log()
        };
        let tckd = kl_batchmean(binary(t_lp.clone().exp()), binary(ps));
        // Non-target KD: the distributions over the other classes, the target masked out.
        let mask = gt.mul_scalar(1000.0);
        let nckd = kl_batchmean(
            log_softmax(t_lp - mask.clone(), 1),
            log_softmax(s_t - mask, 1),
        );
        let warm = (epoch as f32 / c.warmup_epochs as f32).min(1.0);
        let kd = (tckd.mul_scalar(c.alpha) + nckd.mul_scalar(c.beta)).mul_scalar(warm * t * t);
        hard_loss(s, y).mul_scalar(c.ce_weight) + kd
    }

    fn describe(&self) -> String {
        let c = &self.0;
        format!(
            "dkd (T = {}, alpha = {}, beta = {}, warm-up {} epochs, CE weight {}){}",
            c.temperature,
            c.alpha,
            c.beta,
            c.warmup_epochs,
            c.ce_weight,
            if c.standardize {
                " with logit standardization"
            } else {
                ""
            }
        )
    }
}
