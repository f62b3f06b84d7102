//! Bias adjustment: after a student learned from a transfer set that lacked some classes,
//! their output biases are raised by a shift chosen on the validation split (never the test
//! set), as in the paper's omit-3 and only-7-8 experiments.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{argmax, logits, score};
use crate::data::{Label, Splits};
use crate::error::{Error, Result, Setting};
use crate::model::Network;

/// How output biases of classes missing from the transfer set are raised after training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BiasAdjust {
    /// No adjustment.
    None,
    /// The shift with the fewest validation errors (validation split, never the test set).
    Auto,
    /// A fixed shift.
    Fixed(f32),
}

impl std::str::FromStr for BiasAdjust {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BiasAdjust::Auto),
            "none" => Ok(BiasAdjust::None),
            v => match v.parse::<f32>() {
                Ok(x) if x.is_finite() => Ok(BiasAdjust::Fixed(x)),
                _ => Err(Error::setting(
                    Setting::BiasAdjust,
                    format!("must be auto, none or a number, got {v:?}"),
                )),
            },
        }
    }
}

/// How the output biases of classes missing from a transfer set were raised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BiasAdjustReport {
    /// Classes whose bias was raised.
    pub classes: Vec<usize>,
    /// The shift added to their biases.
    pub shift: f32,
    /// How the shift was chosen.
    pub method: String,
    /// Validation errors before the shift.
    pub validation_errors_before: usize,
    /// Validation errors after the shift.
    pub validation_errors_after: usize,
}

/// Picks the bias shift for `classes` (those a transfer set lacked) that minimizes errors on
/// validation logits, searching `0..=max` in steps of `step`; ties go to the smallest shift.
/// Returns `(shift, validation errors at that shift)`.
pub fn choose_bias_shift(
    logits: &[f32],
    labels: &[Label],
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

/// Refuses a bias adjustment for missing classes without a validation split, before any
/// training: `auto` chooses its shift on validation errors and both modes report them.
pub fn check_bias_adjust(mode: BiasAdjust, missing: &[usize], validation: usize) -> Result<()> {
    if mode != BiasAdjust::None && !missing.is_empty() && validation == 0 {
        return Err(Error::config(format!(
            "the bias adjustment for the missing classes {missing:?} needs a validation split: \
             give {} above 0, or {} none",
            Setting::ValidationSize,
            Setting::BiasAdjust
        )));
    }
    Ok(())
}

/// Raises the output biases of `missing` classes of `net` as `mode` says, choosing the shift
/// on the validation split for [`BiasAdjust::Auto`]. Returns what was done, or `None` when
/// nothing is missing or `mode` is [`BiasAdjust::None`].
pub fn adjust_bias(
    net: &mut Network,
    splits: &Splits,
    missing: &[usize],
    mode: BiasAdjust,
    device: &Device,
) -> Result<Option<BiasAdjustReport>> {
    if missing.is_empty() || mode == BiasAdjust::None {
        return Ok(None);
    }
    check_bias_adjust(mode, missing, splits.validation.len())?;
    let classes = splits.dataset.classes;
    let labels = &splits.validation.labels;
    let val_logits = logits(net, &splits.validation, device)?;
    let (_, before) = choose_bias_shift(&val_logits, labels, classes, missing, 0.0, 1.0);
    let (shift, method, after) = match mode {
        BiasAdjust::Fixed(v) => {
            let e = score(&shifted(&val_logits, classes, missing, v), labels, classes).errors;
            (v, format!("fixed by {}", Setting::BiasAdjust), e)
        }
        _ => {
            let (v, e) = choose_bias_shift(&val_logits, labels, classes, missing, 20.0, 0.1);
            let how = format!(
                "auto: fewest errors on the {} validation examples over shifts 0..20 in steps of 0.1",
                splits.validation.len()
            );
            (v, how, e)
        }
    };
    net.shift_bias(missing, shift);
    Ok(Some(BiasAdjustReport {
        classes: missing.to_vec(),
        shift,
        method,
        validation_errors_before: before,
        validation_errors_after: after,
    }))
}

fn shifted(logits: &[f32], classes: usize, shift_classes: &[usize], delta: f32) -> Vec<f32> {
    let mut v = logits.to_vec();
    for row in v.chunks_exact_mut(classes) {
        for &c in shift_classes {
            row[c] += delta;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_shift_recovers_a_suppressed_class() {
        // Class 2 is always 1.5 below where it should win: a shift of about 1.5..2 fixes it
        // without breaking the other examples (class 0 leads class 2 by 3).
        let logits = [
            0.0f32, -5.0, -1.5, 0.0, -5.0, -1.0, 0.0, 4.0, 1.0, 3.0, -2.0, 0.0,
        ];
        let labels = [2u32, 2, 1, 0];
        let (delta, errors) = choose_bias_shift(&logits, &labels, 3, &[2], 5.0, 0.25);
        assert_eq!(errors, 0);
        assert!((1.5..3.0).contains(&delta), "{delta}");
        assert_eq!(choose_bias_shift(&logits, &labels, 3, &[2], 1.0, 0.25).1, 2);
    }

    #[test]
    fn a_bias_adjustment_needs_a_validation_split_only_when_classes_are_missing() {
        let err = check_bias_adjust(BiasAdjust::Auto, &[3], 0).unwrap_err();
        assert!(err.to_string().contains("validation split"), "{err}");
        assert!(check_bias_adjust(BiasAdjust::Fixed(2.0), &[3], 0).is_err());
        assert!(check_bias_adjust(BiasAdjust::Auto, &[3], 10).is_ok());
        assert!(check_bias_adjust(BiasAdjust::None, &[3], 0).is_ok());
        assert!(check_bias_adjust(BiasAdjust::Auto, &[], 0).is_ok());
    }
}
