//! The headline of a summary over seeds: how much of the student's errors distillation removed
//! on average, with its spread, and the experiment's own result.

use serde::{Deserialize, Serialize};

use super::summary::{Stat, Summary};

/// A summary's takeaway and the numbers it states.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeedsHeadline {
    /// The sentences, as the summary prints them first.
    pub text: String,
    /// Per seed, the share of the student alone's test errors that distillation removed,
    /// `(student - distilled) / student` (negative where it added errors).
    pub error_reduction: Stat,
    /// Whether the mean reduction is above zero.
    pub distillation_helped: bool,
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

impl SeedsHeadline {
    /// The headline of `s`; `None` without a student alone and a distilled student.
    pub fn of(s: &Summary) -> Option<SeedsHeadline> {
        let alone = &s.models.get("student")?.test_errors;
        let dist = &s.models.get("distilled")?.test_errors;
        let reduction = Stat::new(
            alone
                .values
                .iter()
                .zip(&dist.values)
                .map(|(a, d)| (a - d) / a.max(1.0))
                .collect(),
        );
        let runs = match reduction.values.len() {
            1 => "In 1 run".to_string(),
            n => format!("Over {n} seeds"),
        };
        let helped = reduction.mean > 0.0;
        // Said as errors removed when distillation helped, else as the change in errors, so
        // that no sentence reads "removed -15%".
        let shown = |v: f64| match helped {
            true => pct(v),
            false => format!("{}{}", if v > 0.0 { "\u{2212}" } else { "+" }, pct(v.abs())),
        };
        let per_seed: Vec<String> = reduction.values.iter().map(|v| shown(*v)).collect();
        let spread = format!(
            "sd {:.1} points; per seed {}",
            100.0 * reduction.sd,
            per_seed.join(", ")
        );
        let errors = format!(
            "the distilled student makes {:.1} \u{b1} {:.1} test errors against {:.1} \u{b1} {:.1} \
             for the same network trained alone",
            dist.mean, dist.sd, alone.mean, alone.sd
        );
        let mut text = match helped {
            true => format!(
                "{runs}, distillation removed {} of the student's test errors on average \
                 ({spread}): {errors}.",
                pct(reduction.mean)
            ),
            false => format!(
                "{runs}, distillation did not reduce the student's test errors: they changed by \
                 {} on average ({spread}); {errors}.",
                shown(reduction.mean)
            ),
        };
        if let Some(extra) = experiment_sentence(s) {
            text = format!("{text} {extra}");
        }
        Some(SeedsHeadline {
            text,
            error_reduction: reduction,
            distillation_helped: helped,
        })
    }
}

/// The experiment's own result over the seeds, from the findings every run recorded.
fn experiment_sentence(s: &Summary) -> Option<String> {
    let mean_sd = |st: &Stat| format!("{} \u{b1} {}", pct(st.mean), pct(st.sd));
    if let Some(st) = s.findings.get("share_of_ensemble_gain_kept") {
        return Some(format!(
            "It keeps {} of the ensemble's gain over a single model.",
            mean_sd(st)
        ));
    }
    let shifted: Vec<(&String, &Stat)> = s
        .findings
        .iter()
        .filter(|(k, _)| {
            k.starts_with("distilled_adjusted_class") && k.ends_with("_correct_fraction")
        })
        .collect();
    if let [(key, st)] = shifted.as_slice() {
        let class = key
            .trim_start_matches("distilled_adjusted_class")
            .trim_end_matches("_correct_fraction");
        return Some(format!(
            "After the bias shift it gets {} of the test {class}s right.",
            mean_sd(st)
        ));
    }
    if s.experiment == "losses" {
        let (name, best) = s
            .models
            .iter()
            .filter(|(k, _)| k.starts_with("distilled"))
            .min_by(|a, b| a.1.test_errors.mean.total_cmp(&b.1.test_errors.mean))?;
        let loss = name.strip_prefix("distilled_").unwrap_or("kd");
        return Some(format!(
            "Best loss for the MLP student on average: {loss} ({:.1} \u{b1} {:.1} test errors).",
            best.test_errors.mean, best.test_errors.sd
        ));
    }
    None
}
