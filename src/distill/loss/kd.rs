//! KD, the loss of Hinton, Vinyals & Dean (2015): `alpha T² KL(teacher_T || student_T) +
//! (1 - alpha) CE(label, student_1)`.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{DistillLoss, check_temperature, hard_loss, log_soft_targets};
use crate::error::{Error, Result, Setting};

/// Temperature and soft-target weight as a user gives them (unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillParams {
    /// Softmax temperature T used for both teacher and student during training (> 0).
    pub temperature: f32,
    /// Weight of the soft-target term; the hard-label term gets `1 - alpha` (in [0, 1]).
    pub alpha: f32,
}

/// Checked distillation settings: only [`DistillParams::check`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DistillConfig {
    settings: DistillParams,
}

impl DistillParams {
    /// Validates T > 0 (finite) and alpha in [0, 1].
    pub fn check(self) -> Result<DistillConfig> {
        check_temperature(self.temperature)?;
        if !self.alpha.is_finite() || !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::setting(
                Setting::Alpha,
                format!(
                    "must be in [0, 1] (weight of the soft-target term), got {}",
                    self.alpha
                ),
            ));
        }
        Ok(DistillConfig { settings: self })
    }
}

impl DistillConfig {
    /// Temperature T.
    pub fn temperature(&self) -> f32 {
        self.settings.temperature
    }
    /// Soft-target weight alpha.
    pub fn alpha(&self) -> f32 {
        self.settings.alpha
    }
    /// The settings this was built from.
    pub fn settings(&self) -> DistillParams {
        self.settings
    }
}

/// `T^2 * KL(teacher_T || student_T)`, summed over classes and averaged over the batch
/// ("batchmean"). `teacher_log_probs` are the teacher's log-probabilities at T (constants).
pub fn soft_loss(
    student_logits: Tensor<2>,
    teacher_log_probs: Tensor<2>,
    temperature: f32,
) -> Tensor<1> {
    let [b, _] = student_logits.dims();
    let log_p = log_soft_targets(student_logits, temperature);
    let q = teacher_log_probs.clone().exp();
    (q * (teacher_log_probs - log_p))
        .sum()
        .mul_scalar(temperature * temperature / b as f32)
}

/// The distillation loss
/// `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(label, student_1)`.
pub fn distillation_loss(
    student_logits: Tensor<2>,
    teacher_log_probs: Tensor<2>,
    labels: Tensor<1, Int>,
    config: &DistillConfig,
) -> Tensor<1> {
    let a = config.alpha();
    let t = config.temperature();
    match (a == 0.0, a == 1.0) {
        (true, _) => hard_loss(student_logits, labels),
        (_, true) => soft_loss(student_logits, teacher_log_probs, t),
        _ => {
            soft_loss(student_logits.clone(), teacher_log_probs, t).mul_scalar(a)
                + hard_loss(student_logits, labels).mul_scalar(1.0 - a)
        }
    }
}

/// The KD loss `alpha * T^2 * KL + (1 - alpha) * CE` with these settings.
impl DistillLoss for DistillConfig {
    fn temperature(&self) -> f32 {
        self.settings.temperature
    }
    fn loss(
        &self,
        student_logits: Tensor<2>,
        teacher_log_probs: Tensor<2>,
        labels: Tensor<1, Int>,
        _epoch: usize,
    ) -> Tensor<1> {
        distillation_loss(student_logits, teacher_log_probs, labels, self)
    }
    fn describe(&self) -> String {
        format!(
            "kd (T = {}, alpha = {})",
            self.settings.temperature, self.settings.alpha
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::softmax_host;
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t2(v: &[f32], shape: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
    }
    fn labels(v: &[i64], d: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), d)
    }
    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    /// Reference loss in f64 straight from the formula.
    fn reference(s: &[[f32; 3]], t: &[[f32; 3]], y: &[usize], temp: f64, alpha: f64) -> f64 {
        let mut soft = 0.0;
        let mut hard = 0.0;
        for i in 0..s.len() {
            let q = softmax_host(&t[i], temp);
            let p = softmax_host(&s[i], temp);
            soft += (0..3).map(|c| q[c] * (q[c].ln() - p[c].ln())).sum::<f64>();
            hard -= softmax_host(&s[i], 1.0)[y[i]].ln();
        }
        let n = s.len() as f64;
        alpha * temp * temp * soft / n + (1.0 - alpha) * hard / n
    }

    #[test]
    fn softmax_host_hand_values() {
        // softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]; at T = 2 the weights become sqrt.
        let z = [0.0, 2f32.ln(), 3f32.ln()];
        let p = softmax_host(&z, 1.0);
        for (a, b) in p.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((a - b).abs() < 1e-6);
        }
        let p2 = softmax_host(&z, 2.0);
        let s = 1.0 + 2f64.sqrt() + 3f64.sqrt();
        assert!((p2[0] - 1.0 / s).abs() < 1e-6);
    }

    #[test]
    fn losses_match_hand_computed_numbers() {
        let d = Device::flex();
        // CE of uniform logits over 4 classes is ln 4.
        let ce = scalar(hard_loss(t2(&[0.0; 8], [2, 4], &d), labels(&[1, 3], &d)));
        assert!((ce - 4f64.ln()).abs() < 1e-6, "{ce}");
        // CE for logits [ln1, ln3] and label 1: -ln(3/4).
        let ce = scalar(hard_loss(
            t2(&[0.0, 3f32.ln()], [1, 2], &d),
            labels(&[1], &d),
        ));
        assert!((ce + 0.75f64.ln()).abs() < 1e-6, "{ce}");
        // KL between identical distributions is 0; T^2 KL for a hand-made pair.
        let z = [1.0, 2.0, 3.0];
        let lq = log_soft_targets(t2(&z, [1, 3], &d), 2.0);
        assert!(scalar(soft_loss(t2(&z, [1, 3], &d), lq, 2.0)).abs() < 1e-6);
        // Two-class case: q = [0.5, 0.5], p = [0.25, 0.75] at T = 1: KL = 0.5 ln(2) + 0.5 ln(2/3).
        let lq = t2(&[0.5f32.ln(), 0.5f32.ln()], [1, 2], &d);
        let kl = scalar(soft_loss(
            t2(&[0.0, 3f32.ln()], [1, 2], &d),
            lq.clone(),
            1.0,
        ));
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl - want).abs() < 1e-6, "{kl} vs {want}");
        // Same logits scaled by T = 3 give the same KL times T^2 = 9.
        let kl3 = scalar(soft_loss(t2(&[0.0, 3.0 * 3f32.ln()], [1, 2], &d), lq, 3.0));
        assert!((kl3 - 9.0 * want).abs() < 1e-5, "{kl3}");
    }

    #[test]
    fn distillation_loss_matches_reference_formula_and_batchmean() {
        let d = Device::flex();
        let s = [[1.0f32, -0.5, 2.0], [0.3, 0.2, -1.0]];
        let t = [[2.0f32, 0.0, 1.0], [-1.0, 3.0, 0.5]];
        let y = [2usize, 1];
        for (temp, alpha) in [(1.0f32, 0.5f32), (4.0, 0.9), (20.0, 1.0), (2.0, 0.0)] {
            let cfg = DistillParams {
                temperature: temp,
                alpha,
            }
            .check()
            .unwrap();
            let st = t2(&s.concat(), [2, 3], &d);
            let lq = log_soft_targets(t2(&t.concat(), [2, 3], &d), temp);
            let got = scalar(distillation_loss(st, lq, labels(&[2, 1], &d), &cfg));
            let want = reference(&s, &t, &y, temp as f64, alpha as f64);
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "T={temp} a={alpha}: {got} vs {want}"
            );
        }
    }

    fn grad_of(s: &[f32], t: &[f32], y: &[i64], cfg: &DistillConfig) -> Vec<f32> {
        let d = Device::flex().autodiff();
        let n = s.len() / 3;
        let st = t2(s, [n, 3], &d).require_grad();
        let lq = log_soft_targets(t2(t, [n, 3], &d), cfg.temperature());
        let loss = distillation_loss(st.clone(), lq, labels(y, &d), cfg);
        let g = loss.backward();
        st.grad(&g).unwrap().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let s = [0.7f32, -0.2, 1.5, 0.1, 0.4, -0.9];
        let t = [2.0f32, 0.0, 1.0, -1.0, 3.0, 0.5];
        let y = [0usize, 2];
        for (temp, alpha) in [(1.0f32, 0.3f32), (5.0, 0.7), (20.0, 0.95)] {
            let cfg = DistillParams {
                temperature: temp,
                alpha,
            }
            .check()
            .unwrap();
            let g = grad_of(&s, &t, &[0, 2], &cfg);
            let f = |v: &[f32]| {
                let sv: Vec<[f32; 3]> = v.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
                let tv: Vec<[f32; 3]> = t.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
                reference(&sv, &tv, &y, temp as f64, alpha as f64)
            };
            let h = 1e-3f32;
            for i in 0..s.len() {
                let mut up = s;
                up[i] += h;
                let mut dn = s;
                dn[i] -= h;
                let fd = (f(&up) - f(&dn)) / (2.0 * h as f64);
                assert!(
                    (g[i] as f64 - fd).abs() < 2e-3 * fd.abs().max(0.05),
                    "T={temp} i={i}: {} vs {fd}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn t_squared_keeps_soft_gradient_norm_in_scale_across_temperatures() {
        // Zero-mean logits, as the high-T analysis assumes.
        let s = [0.5f32, -1.0, 0.5, 1.0, 0.2, -1.2];
        let t = [2.0f32, -1.5, -0.5, -1.0, 2.5, -1.5];
        let norm = |temp: f32| {
            let cfg = DistillParams {
                temperature: temp,
                alpha: 1.0,
            }
            .check()
            .unwrap();
            grad_of(&s, &t, &[0, 1], &cfg)
                .iter()
                .map(|g| (g * g) as f64)
                .sum::<f64>()
                .sqrt()
        };
        let norms: Vec<f64> = [1.0f32, 2.0, 5.0, 10.0, 20.0]
            .iter()
            .map(|&t| norm(t))
            .collect();
        let (lo, hi) = norms
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &n| (l.min(n), h.max(n)));
        assert!(hi / lo < 4.0, "norms vary too much with T: {norms:?}");
        // Without T^2 the gradient would fall like 1/T^2: a factor of 400 between T=1 and T=20.
        assert!(norms[4] > 0.05 * norms[0], "{norms:?}");
    }

    #[test]
    fn settings_are_checked() {
        for (t, a) in [
            (0.0, 0.5),
            (-1.0, 0.5),
            (f32::NAN, 0.5),
            (2.0, -0.1),
            (2.0, 1.1),
            (f32::INFINITY, 0.5),
        ] {
            assert!(
                DistillParams {
                    temperature: t,
                    alpha: a
                }
                .check()
                .is_err(),
                "T={t} a={a}"
            );
        }
        assert!(
            DistillParams {
                temperature: 0.5,
                alpha: 1.0
            }
            .check()
            .is_ok()
        );
    }
}
