//! DIST (Huang et al., NeurIPS 2022): one minus the Pearson correlation of student and
//! teacher probabilities, across the classes of each example (inter-class) and across the
//! examples of each class (intra-class).

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

use super::settings::LossParams;
use super::{DistillLoss, hard_loss};

/// Added to the norms' product in a Pearson correlation, as in Huang et al.
const PEARSON_EPS: f32 = 1e-8;

/// DIST with checked settings.
#[derive(Debug)]
pub(super) struct Dist(pub(super) LossParams);

/// Row-wise Pearson correlation of `a` and `b` `[rows, n]`, averaged over rows.
fn mean_pearson(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let a = a.clone() - a.mean_dim(1);
    let b = b.clone() - b.mean_dim(1);
    let num = (a.clone() * b.clone()).sum_dim(1);
    let den = (a.powi_scalar(2).sum_dim(1).sqrt() * b.powi_scalar(2).sum_dim(1).sqrt())
        .add_scalar(PEARSON_EPS);
    num.div(den).mean()
}

impl DistillLoss for Dist {
    fn temperature(&self) -> f32 {
        self.0.temperature
    }

    fn loss(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>, _epoch: usize) -> Tensor<1> {
        let c = &self.0;
        let tau = c.temperature;
        let ps = softmax(s.clone().div_scalar(tau), 1);
        let pt = t_lp.exp();
        let inter = mean_pearson(ps.clone(), pt.clone()).neg().add_scalar(1.0);
        let intra = mean_pearson(ps.transpose(), pt.transpose())
            .neg()
            .add_scalar(1.0);
        let relations =
            (inter.mul_scalar(c.beta) + intra.mul_scalar(c.gamma)).mul_scalar(tau * tau);
        hard_loss(s, y).mul_scalar(c.ce_weight) + relations
    }

    fn describe(&self) -> String {
        let c = &self.0;
        format!(
            "dist (tau = {}, beta = {}, gamma = {}, CE weight {})",
            c.temperature, c.beta, c.gamma, c.ce_weight
        )
    }
}
