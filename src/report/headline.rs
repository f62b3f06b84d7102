//! The takeaway of a run in one or two sentences, made from its numbers, and the numbers
//! themselves: what a reader should learn before any table or chart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Report;
use crate::eval::ModelReport;

/// A run's headline and the figures it states.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Headline {
    /// The sentences, as the report prints them first.
    pub text: String,
    /// Test errors of the teacher (or ensemble).
    pub teacher_errors: usize,
    /// Test errors of the student trained alone on hard labels.
    pub student_errors: usize,
    /// Test errors of the distilled student.
    pub distilled_errors: usize,
    /// Test examples each was scored on.
    pub test_examples: usize,
    /// Share of the student's test errors that distillation removed,
    /// `(student - distilled) / student`; negative when it added errors.
    pub error_reduction: f64,
    /// The distilled student's parameters over the teacher's.
    pub params_ratio: f64,
    /// The teacher's batch-1 latency over the distilled student's (above 1: the student is
    /// faster); `None` where either was not timed.
    pub speedup_batch1: Option<f64>,
    /// Share of test images on which the distilled student and the teacher give the same class.
    pub agreement_with_teacher: Option<f64>,
    /// Whether the distilled student makes fewer test errors than the student alone.
    pub distillation_helped: bool,
    /// Whether the teacher makes fewer test errors than the student alone.
    pub teacher_better_than_student: bool,
    /// Classes left out of the transfer set (omit-3, only-7-8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted_classes: Vec<usize>,
    /// Share of test images of the omitted classes the distilled student gets right, before
    /// and after the bias shift, and the student alone's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_right: Option<OmittedRight>,
    /// Share of the ensemble's gain over a single model that the distilled student keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble_gain_kept: Option<f64>,
    /// The loss whose student made the fewest test errors, and those errors (losses experiment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_loss: Option<(String, usize)>,
}

/// How much of the classes missing from the transfer set each student gets right.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OmittedRight {
    /// Student trained alone.
    pub student: f64,
    /// Distilled student, before the bias shift.
    pub before_shift: f64,
    /// Distilled student, after the bias shift.
    pub after_shift: f64,
}

/// `0.4` -> `40%`, one decimal below 10% and above 99%.
pub(crate) fn percent(share: f64) -> String {
    let p = 100.0 * share;
    if p.abs() < 10.0 || (p > 99.0 && p < 100.0) {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// A change in errors as `−40%` or `+6%`.
pub(crate) fn signed_change(from: f64, to: f64) -> String {
    let p = 100.0 * (to - from) / from.max(1.0);
    let sign = if p < 0.0 { "\u{2212}" } else { "+" };
    format!("{sign}{:.0}%", p.abs())
}

fn share_right(m: &ModelReport, classes: &[usize]) -> f64 {
    let n: usize = classes.iter().map(|&c| m.class_examples[c]).sum();
    let wrong: usize = classes.iter().map(|&c| m.class_errors[c]).sum();
    1.0 - wrong as f64 / n.max(1) as f64
}

fn classes_phrase(classes: &[usize]) -> String {
    match classes {
        [c] => format!("the test {c}s"),
        _ => format!(
            "the test images of the omitted classes ({})",
            classes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl Headline {
    /// The headline of `r`; `None` without a teacher, a student alone and a distilled student.
    pub fn of(r: &Report) -> Option<Headline> {
        let m = &r.models;
        let teacher = m.get("ensemble").or_else(|| m.get("teacher"))?;
        let (student, distilled) = (m.get("student")?, m.get("distilled")?);
        let timed = teacher.infer_us_per_example > 0.0 && distilled.infer_us_per_example > 0.0;
        let mut h = Headline {
            teacher_errors: teacher.test_errors,
            student_errors: student.test_errors,
            distilled_errors: distilled.test_errors,
            test_examples: distilled.test_examples,
            error_reduction: (student.test_errors as f64 - distilled.test_errors as f64)
                / student.test_errors.max(1) as f64,
            params_ratio: distilled.params as f64 / teacher.params.max(1) as f64,
            speedup_batch1: timed
                .then(|| teacher.infer_us_per_example / distilled.infer_us_per_example),
            agreement_with_teacher: r.dark_knowledge.as_ref().and_then(|d| {
                d.agreement_with_teacher
                    .get("distilled")
                    .map(|a| a.top1_agreement)
            }),
            distillation_helped: distilled.test_errors < student.test_errors,
            teacher_better_than_student: teacher.test_errors < student.test_errors,
            ..Headline::default()
        };
        let teacher_name = if m.contains_key("ensemble") {
            "ensemble"
        } else {
            "teacher"
        };
        let main = h.main_sentence(teacher_name);
        h.text = match r.experiment.as_str() {
            "omit-3" | "only-7-8" => h.omitted(r, &main),
            "ensemble" => h.ensemble(m, &main),
            "losses" => h.losses(m, &main),
            _ => main,
        };
        Some(h)
    }

    /// The distilled student against the student alone, then size, speed and agreement.
    fn main_sentence(&self, teacher: &str) -> String {
        let (s, d) = (self.student_errors, self.distilled_errors);
        let change = signed_change(s as f64, d as f64);
        let mut text = String::new();
        if !self.teacher_better_than_student {
            text += &format!(
                "The {teacher} makes {} test errors, no fewer than the student trained alone \
                 ({s}): it has little to teach. ",
                self.teacher_errors
            );
        }
        if self.distillation_helped {
            text += &format!(
                "The distilled student makes {d} test errors against {s} for the same network \
                 trained alone ({change})"
            );
        } else {
            text += &format!(
                "Distillation did not help: the distilled student makes {d} test errors against \
                 {s} for the same network trained alone ({change})"
            );
        }
        let mut facts = vec![format!(
            "it has {} of the {teacher}'s parameters",
            percent(self.params_ratio)
        )];
        if let Some(x) = self.speedup_batch1 {
            facts.push(match x >= 1.0 {
                true => format!("runs {x:.1}\u{d7} faster at batch 1"),
                false => format!("runs {:.1}\u{d7} slower at batch 1", 1.0 / x),
            });
        }
        if let Some(a) = self.agreement_with_teacher {
            facts.push(format!(
                "agrees with the {teacher} on {} of test images",
                percent(a)
            ));
        }
        let last = facts.pop().unwrap_or_default();
        match facts.is_empty() {
            true => format!("{text}; {last}."),
            false => format!("{text}; {}, and {last}.", facts.join(", ")),
        }
    }

    fn omitted(&mut self, r: &Report, main: &str) -> String {
        let classes = r
            .bias_adjust
            .as_ref()
            .map(|b| b.classes.clone())
            .unwrap_or_default();
        let m = &r.models;
        let (Some(adjusted), false) = (m.get("distilled_adjusted"), classes.is_empty()) else {
            return main.to_string();
        };
        let right = OmittedRight {
            student: share_right(&m["student"], &classes),
            before_shift: share_right(&m["distilled"], &classes),
            after_shift: share_right(adjusted, &classes),
        };
        let what = classes_phrase(&classes);
        let text = if right.after_shift > right.student {
            format!(
                "With no example of them in its transfer set, the distilled student gets {} of \
                 {what} right after the bias shift ({} before it; the student alone {}). ",
                percent(right.after_shift),
                percent(right.before_shift),
                percent(right.student)
            )
        } else {
            format!(
                "Distillation did not teach the missing classes: after the bias shift the \
                 distilled student gets {} of {what} right, no more than the student alone ({}). ",
                percent(right.after_shift),
                percent(right.student)
            )
        };
        self.omitted_classes = classes;
        self.omitted_right = Some(right);
        text + main
    }

    fn ensemble(&mut self, m: &BTreeMap<String, ModelReport>, main: &str) -> String {
        let Some(single) = m.get("single") else {
            return main.to_string();
        };
        let (one, ens, dist) = (
            single.test_errors as f64,
            self.teacher_errors as f64,
            self.distilled_errors as f64,
        );
        if ens >= one {
            return format!(
                "The ensemble makes {ens} test errors, no fewer than one of its members ({one} on \
                 average), so there was no gain to keep. {main}"
            );
        }
        let kept = (one - dist) / (one - ens);
        self.ensemble_gain_kept = Some(kept);
        let verb = if kept > 0.0 {
            format!("keeps {} of", percent(kept))
        } else {
            "keeps none of".to_string()
        };
        format!(
            "The distilled student {verb} the ensemble's gain over a single model: {dist} test \
             errors against {one} for one member and {ens} for the ensemble. {main}"
        )
    }

    fn losses(&mut self, m: &BTreeMap<String, ModelReport>, main: &str) -> String {
        let best = m
            .iter()
            .filter(|(k, _)| *k == "distilled" || k.starts_with("distilled_"))
            .filter(|(k, _)| *k != "distilled_adjusted")
            .min_by_key(|(k, v)| (v.test_errors, (*k).clone()));
        let Some((name, best)) = best else {
            return main.to_string();
        };
        let loss = match name.strip_prefix("distilled_") {
            Some(l) => match l.strip_suffix("_ls") {
                Some(base) => format!("{base} with standardized logits"),
                None => l.to_string(),
            },
            None => "kd".into(),
        };
        self.best_loss = Some((loss.clone(), best.test_errors));
        let s = self.student_errors;
        let text = if best.test_errors < s {
            format!(
                "Best loss: {loss}, with {} test errors for the MLP student against {s} trained \
                 alone ({}). ",
                best.test_errors,
                signed_change(s as f64, best.test_errors as f64)
            )
        } else {
            format!(
                "No loss helped the MLP student: the best, {loss}, makes {} test errors against \
                 {s} trained alone. ",
                best.test_errors
            )
        };
        text + main
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headline(teacher: usize, student: usize, distilled: usize) -> Headline {
        Headline {
            teacher_errors: teacher,
            student_errors: student,
            distilled_errors: distilled,
            params_ratio: 0.533,
            speedup_batch1: Some(1.31),
            agreement_with_teacher: Some(0.995),
            distillation_helped: distilled < student,
            teacher_better_than_student: teacher < student,
            ..Headline::default()
        }
    }

    #[test]
    fn the_headline_states_the_result_and_says_so_when_it_goes_against_distillation() {
        let h = headline(71, 141, 85).main_sentence("teacher");
        assert_eq!(
            h,
            "The distilled student makes 85 test errors against 141 for the same network \
             trained alone (\u{2212}40%); it has 53% of the teacher's parameters, runs 1.3\u{d7} \
             faster at batch 1, and agrees with the teacher on 99.5% of test images."
        );
        let worse = headline(71, 141, 150).main_sentence("teacher");
        assert!(
            worse.starts_with("Distillation did not help: the distilled student makes 150"),
            "{worse}"
        );
        assert!(worse.contains("(+6%)"), "{worse}");
        let weak = headline(150, 141, 130).main_sentence("ensemble");
        assert!(
            weak.starts_with("The ensemble makes 150 test errors, no fewer than the student"),
            "{weak}"
        );
        assert!(weak.contains("of the ensemble's parameters"), "{weak}");
        let slow = Headline {
            speedup_batch1: Some(0.5),
            agreement_with_teacher: None,
            ..headline(71, 141, 85)
        };
        assert!(
            slow.main_sentence("teacher").ends_with(
                "it has 53% of the teacher's parameters, and runs 2.0\u{d7} slower at batch 1."
            ),
            "{}",
            slow.main_sentence("teacher")
        );
    }

    #[test]
    fn percentages_keep_a_decimal_where_it_matters() {
        assert_eq!(percent(0.4), "40%");
        assert_eq!(percent(0.995), "99.5%");
        assert_eq!(percent(0.05), "5.0%");
        assert_eq!(signed_change(141.0, 85.0), "\u{2212}40%");
    }
}
