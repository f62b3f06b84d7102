//! The soft-target losses that followed the 2015 one, each a [`DistillLoss`]:
//! - DKD, decoupled KD (Zhao et al., CVPR 2022): the KL split into a target-class part (weight
//!   alpha) and a non-target part (weight beta), with a linear warm-up of both;
//! - DIST (Huang et al., NeurIPS 2022): one minus the Pearson correlation of student and
//!   teacher probabilities, across the classes of each example (inter-class) and across the
//!   examples of each class (intra-class);
//! - logit standardization (Sun et al., CVPR 2024): logits z-scored per example before the
//!   temperature softmax, as a modifier of KD and DKD.
//!
//! All take the teacher's log-probabilities at their temperature, as the cache stores them.
//! A z-score removes any per-example shift and positive scale, so z-scoring cached
//! log-probabilities `z / T - c` gives exactly the z-scored teacher logits.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::loss::{
    DistillConfig, DistillLoss, DistillSettings, check_temperature, hard_loss, soft_loss,
};
use crate::error::{Error, Result, Setting};

/// Added to the standard deviation in a z-score, as in Sun et al.
const STD_EPS: f32 = 1e-7;
/// Added to the norms' product in a Pearson correlation, as in Huang et al.
const PEARSON_EPS: f32 = 1e-8;

/// Which soft-target loss a student trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Hinton et al. (2015): `alpha T² KL + (1 - alpha) CE`.
    #[default]
    Kd,
    /// Decoupled KD.
    Dkd,
    /// DIST's correlation relations.
    Dist,
}

impl LossKind {
    /// The name a user gives it (`kd`, `dkd`, `dist`).
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Kd => "kd",
            LossKind::Dkd => "dkd",
            LossKind::Dist => "dist",
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kd" => Ok(LossKind::Kd),
            "dkd" => Ok(LossKind::Dkd),
            "dist" => Ok(LossKind::Dist),
            _ => Err(Error::setting(
                Setting::Loss,
                format!("must be kd, dkd or dist, got {s:?}"),
            )),
        }
    }
}

/// A loss and its hyperparameters as options give them; [`LossSettings::check`] builds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossSettings {
    /// Which loss.
    pub kind: LossKind,
    /// Temperature (DIST's tau); with standardization, the base temperature of the z-scores.
    pub temperature: f32,
    /// KD: weight of the soft term. DKD: weight of the target-class term.
    pub alpha: f32,
    /// DKD: weight of the non-target term. DIST: weight of the inter-class relation.
    pub beta: f32,
    /// DIST: weight of the intra-class relation.
    pub gamma: f32,
    /// DKD: epochs over which its terms' weight rises linearly to 1.
    pub warmup_epochs: usize,
    /// DKD and DIST: weight of the cross-entropy to the labels.
    pub ce_weight: f32,
    /// Z-score logits per example before the temperature softmax (KD and DKD).
    pub standardize: bool,
}

impl LossSettings {
    /// The papers' defaults for `kind`: KD T = 20, alpha = 0.9 (this project's MNIST setting);
    /// DKD T = 4, alpha = 1, beta = 8, warm-up 20 epochs, CE weight 1 (Zhao et al., CIFAR-100);
    /// DIST tau = 1, beta = gamma = 1, CE weight 1 (Huang et al.).
    pub fn defaults(kind: LossKind) -> LossSettings {
        let base = LossSettings {
            kind,
            temperature: 20.0,
            alpha: 0.9,
            beta: 1.0,
            gamma: 1.0,
            warmup_epochs: 20,
            ce_weight: 1.0,
            standardize: false,
        };
        match kind {
            LossKind::Kd => base,
            LossKind::Dkd => LossSettings {
                temperature: 4.0,
                alpha: 1.0,
                beta: 8.0,
                ..base
            },
            LossKind::Dist => LossSettings {
                temperature: 1.0,
                ..base
            },
        }
    }

    /// The same loss on z-scored logits, at the base temperature Sun et al. use with every
    /// loss they standardize (2, their CIFAR-100 setting).
    pub fn standardized(self) -> LossSettings {
        LossSettings {
            standardize: true,
            temperature: 2.0,
            ..self
        }
    }

    /// Checks every field and builds the loss.
    pub fn check(self) -> Result<std::sync::Arc<dyn DistillLoss>> {
        check_temperature(self.temperature)?;
        // KD keeps its own checks (alpha in [0, 1]); the other losses' weights are checked below.
        let kd = match self.kind {
            LossKind::Kd => Some(
                DistillSettings {
                    temperature: self.temperature,
                    alpha: self.alpha,
                }
                .check()?,
            ),
            _ => None,
        };
        for (name, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
            ("CE weight", self.ce_weight),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::config(format!(
                    "the loss's {name} must be a finite number >= 0, got {v}"
                )));
            }
        }
        if self.warmup_epochs == 0 {
            return Err(Error::setting(
                Setting::DkdWarmup,
                "must be at least 1 epoch",
            ));
        }
        if self.standardize && self.kind == LossKind::Dist {
            return Err(Error::setting(
                Setting::LogitStandardize,
                "modifies kd and dkd; DIST's correlations are already invariant to shifts and \
                 scales of the probabilities",
            ));
        }
        Ok(match (kd, self.standardize) {
            (Some(kd), false) => std::sync::Arc::new(kd),
            (Some(kd), true) => std::sync::Arc::new(StandardizedKd(kd)),
            (None, _) => std::sync::Arc::new(Checked(self)),
        })
    }
}

/// `(z - mean) / (eps + std)` per row, with the unbiased standard deviation as Sun et al. use.
pub fn zscore(z: Tensor<2>) -> Tensor<2> {
    let mean = z.clone().mean_dim(1);
    let std = z.clone().var(1).sqrt().add_scalar(STD_EPS);
    (z - mean).div(std)
}

/// KD on z-scored logits (Sun et al.); the cross-entropy stays on the raw logits.
#[derive(Debug)]
struct StandardizedKd(DistillConfig);

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

/// DKD or DIST with checked settings.
#[derive(Debug)]
struct Checked(LossSettings);

/// `sum(p * (log p - log q)) / batch`: KL(p || q) with the batch mean of PyTorch's
/// "batchmean"; `p` is given by its logarithm so that zero probabilities stay exact.
fn kl_batchmean(log_p: Tensor<2>, log_q: Tensor<2>) -> Tensor<1> {
    let [b, _] = log_p.dims();
    (log_p.clone().exp() * (log_p - log_q))
        .sum()
        .div_scalar(b as f32)
}

/// Row-wise Pearson correlation of `a` and `b` `[rows, n]`, averaged over rows.
fn mean_pearson(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let a = a.clone() - a.mean_dim(1);
    let b = b.clone() - b.mean_dim(1);
    let num = (a.clone() * b.clone()).sum_dim(1);
    let den = (a.powi_scalar(2).sum_dim(1).sqrt() * b.powi_scalar(2).sum_dim(1).sqrt())
        .add_scalar(PEARSON_EPS);
    num.div(den).mean()
}

impl Checked {
    fn dkd(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>, epoch: usize) -> Tensor<1> {
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

    fn dist(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>) -> Tensor<1> {
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
}

impl DistillLoss for Checked {
    fn temperature(&self) -> f32 {
        self.0.temperature
    }
    fn loss(&self, s: Tensor<2>, t_lp: Tensor<2>, y: Tensor<1, Int>, epoch: usize) -> Tensor<1> {
        match self.0.kind {
            LossKind::Dist => self.dist(s, t_lp, y),
            _ => self.dkd(s, t_lp, y, epoch),
        }
    }
    fn describe(&self) -> String {
        let c = &self.0;
        match c.kind {
            LossKind::Dist => format!(
                "dist (tau = {}, beta = {}, gamma = {}, CE weight {})",
                c.temperature, c.beta, c.gamma, c.ce_weight
            ),
            _ => format!(
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
            ),
        }
    }
}
