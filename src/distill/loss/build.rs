//! The one place that checks a user's loss settings and builds the loss they describe.

use super::dist::Dist;
use super::dkd::Dkd;
use super::kd::DistillParams;
use super::settings::{LossKind, LossParams};
use super::standardized::StandardizedKd;
use super::{DistillLoss, check_temperature};
use crate::error::{Error, Result, Setting};

impl LossParams {
    /// Checks every field and builds the loss.
    pub fn check(self) -> Result<std::sync::Arc<dyn DistillLoss>> {
        check_temperature(self.temperature)?;
        // KD keeps its own checks (alpha in [0, 1]); the other losses' weights are checked below.
        let kd = match self.kind {
            LossKind::Kd => Some(
                DistillParams {
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
            (None, _) if self.kind == LossKind::Dist => std::sync::Arc::new(Dist(self)),
            (None, _) => std::sync::Arc::new(Dkd(self)),
        })
    }
}
