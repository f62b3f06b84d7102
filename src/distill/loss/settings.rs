//! Which loss a student trains with and its hyperparameters as a user gives them (checked and
//! built into a [`super::DistillLoss`] by `build`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Setting};

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

/// A loss and its hyperparameters as options give them; [`LossParams::check`] builds it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossParams {
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

impl LossParams {
    /// The papers' defaults for `kind`: KD T = 20, alpha = 0.9 (this project's MNIST setting);
    /// DKD T = 4, alpha = 1, beta = 8, warm-up 20 epochs, CE weight 1 (Zhao et al., CIFAR-100);
    /// DIST tau = 1, beta = gamma = 1, CE weight 1 (Huang et al.).
    pub fn defaults(kind: LossKind) -> LossParams {
        let base = LossParams {
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
            LossKind::Dkd => LossParams {
                temperature: 4.0,
                alpha: 1.0,
                beta: 8.0,
                ..base
            },
            LossKind::Dist => LossParams {
                temperature: 1.0,
                ..base
            },
        }
    }

    /// The same loss on z-scored logits, at the base temperature Sun et al. use with every
    /// loss they standardize (2, their CIFAR-100 setting).
    pub fn standardized(self) -> LossParams {
        LossParams {
            standardize: true,
            temperature: 2.0,
            ..self
        }
    }
}
