//! The teacher ladder. A teacher that does not beat the student trained alone on validation
//! (clearly, where the count of errors allows: see [`beats`]) has little to teach, and a first
//! run on new data is where that happens: a preset's regularization and schedule were sized on
//! other data. So the recipe climbs. Each rung is a stronger teacher, trained and judged on
//! validation errors only, and the climb stops at the first winner, at the top, or when the
//! time budget runs out. A teacher the user gives (a model directory, an ONNX file) or an
//! ensemble is judged the same way and never replaced: the report says how it compares.

use std::time::{Duration, Instant};

use super::{Run, TeacherRun};
use crate::error::{Error, Result};
use crate::experiment::losses::CNN_TEACHER;
use crate::model::Predictor;
use crate::report::{TeacherCandidate, TeacherChoice};
use crate::train::{RoleConfig, RoleParams, Trained};

/// Whether `teacher` validation errors are clearly fewer than `student`'s: by more than twice
/// the standard error of the student's count (a count of errors varies about like its square
/// root), so that a lead the sampling of the validation split alone could give does not count.
pub fn clearly_fewer(teacher: usize, student: usize) -> bool {
    (teacher as f64) + 2.0 * (student as f64).sqrt() < student as f64
}

/// Whether a teacher with `teacher` validation errors beats the student alone with `student`:
/// clearly where the count allows a clear lead, and by any margin where it is too small for one
/// (up to 4 errors, where even a perfect teacher's lead is within the noise). A tie is never a
/// win: a teacher no better than the student has nothing to teach it.
pub fn beats(teacher: usize, student: usize) -> bool {
    match clearly_fewer(0, student) {
        true => clearly_fewer(teacher, student),
        false => teacher < student,
    }
}

/// One rung: its name in the report, its directory under `teachers/`, the role it trains.
struct Rung {
    name: &'static str,
    dir: &'static str,
    role: RoleParams,
}

/// The rungs above the recipe's teacher, weakest first: the same network with half the dropout
/// and twice the epochs (a teacher held back by its regularization or its schedule), then for
/// images large enough to pool twice the project's CNN teacher (the losses experiment's) on
/// the recipe's schedule, not a doubled one: an epoch of it costs more than one of the MLP
/// teacher's, and with both rungs climbed on a large dataset a doubled schedule would take the
/// default run past its time limit (docs/speed.md, "The teacher ladder").
fn rungs(teacher: &RoleConfig, cnn: bool) -> Vec<Rung> {
    let base = teacher.params();
    let mut longer = base.clone();
    longer.input_dropout /= 2.0;
    longer.hidden_dropout /= 2.0;
    longer.train.epochs *= 2;
    let mut rungs = vec![Rung {
        name: "longer, lighter",
        dir: "longer",
        role: longer,
    }];
    if cnn {
        let mut cnn = base;
        cnn.spec = CNN_TEACHER.into();
        cnn.input_dropout = 0.0;
        cnn.hidden_dropout = 0.3;
        rungs.push(Rung {
            name: "cnn",
            dir: "cnn",
            role: cnn,
        });
    }
    rungs
}

/// `trained of planned` epochs, and why training stopped short when it did.
fn epochs_text(run: &TeacherRun, planned: usize) -> String {
    match run.history.len() {
        n if n >= planned => format!("{n}"),
        n => format!("{n} of {planned} (stopped early)"),
    }
}

impl Run<'_> {
    /// The teacher to distill from: the recipe's own when it [`beats`] `student` on
    /// validation, else the first rung that does, else the candidate with the fewest
    /// validation errors. `None` for the record when nothing could judge (no validation split:
    /// the test set never decides).
    pub(super) fn choose_teacher(
        &mut self,
        preset: TeacherRun,
        student: &Trained,
        teacher_role: &RoleConfig,
        start: Instant,
    ) -> Result<(TeacherRun, Option<TeacherChoice>)> {
        let (Some(t), Some(s)) = (preset.validation_errors, student.validation_errors()) else {
            return Ok((preset, None));
        };
        let planned = teacher_role.train.settings().epochs;
        let (name, epochs) = match self.opts.teacher {
            Some(_) => ("the given teacher", "as given".to_string()),
            None => ("the recipe's teacher", epochs_text(&preset, planned)),
        };
        let first = TeacherCandidate {
            name: name.into(),
            model: preset.model.describe(),
            validation_errors: t,
            seconds: preset.seconds,
            epochs,
        };
        let no_climb = if !self.opts.ladder {
            Some("the ladder was off, so it is distilled from as it is")
        } else if self.opts.teacher.is_some() || self.opts.config.members > 1 {
            Some("a given teacher or an ensemble is distilled from as it is, never replaced")
        } else {
            None
        };
        if let Some(choice) = judged_alone(&first, s, no_climb) {
            return Ok((preset, Some(choice)));
        }
        let mut candidates = vec![first];
        let mut runs = vec![preset];
        let ran_out = self.climb(teacher_role, s, start, &mut candidates, &mut runs)?;
        let chosen = winner(&candidates, s);
        let reason = reason(&candidates, chosen, s, ran_out);
        let teacher = runs.swap_remove(chosen);
        let choice = TeacherChoice {
            student_validation_errors: s,
            candidates,
            chosen,
            reason,
        };
        Ok((teacher, Some(choice)))
    }

    /// Trains the rungs in turn into `teachers/`, adding each to `candidates` and `runs`, up to
    /// the first that beats the student alone's `student` validation errors; true when the
    /// budget stopped the climb.
    fn climb(
        &mut self,
        teacher_role: &RoleConfig,
        student: usize,
        start: Instant,
        candidates: &mut Vec<TeacherCandidate>,
        runs: &mut Vec<TeacherRun>,
    ) -> Result<bool> {
        let deadline = self
            .opts
            .budget_minutes
            .map(|m| start + Duration::from_secs_f64(m * 60.0));
        let shape = self.splits.dataset.shape;
        let cnn = !self.splits.dataset.is_table() && shape.height.min(shape.width) >= 4;
        for rung in rungs(teacher_role, cnn) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(true);
            }
            let role = rung.role.check()?;
            let dir = self.opts.out.join("teachers").join(rung.dir);
            let trained = self.hard_model(&role, &dir, rung.name, deadline);
            // A rung that diverges is a candidate that failed, not a failed run.
            let trained = match trained {
                Err(e @ Error::Diverged { .. }) => {
                    self.notes
                        .push(format!("teacher ladder: \"{}\" left out: {e}", rung.name));
                    continue;
                }
                other => other?,
            };
            let run = TeacherRun::single(trained, dir);
            let Some(v) = run.validation_errors else {
                break;
            };
            candidates.push(TeacherCandidate {
                name: rung.name.into(),
                model: run.model.describe(),
                validation_errors: v,
                seconds: run.seconds,
                epochs: epochs_text(&run, role.train.settings().epochs),
            });
            runs.push(run);
            if beats(v, student) {
                break;
            }
        }
        Ok(false)
    }
}

/// The record of `first`, the only teacher, judged against the student alone's `s` validation
/// errors when no ladder is climbed: it wins, nothing can (`s` is 0), or `no_climb` says why it
/// is kept as it is. `None` when it loses and the ladder may climb.
pub(crate) fn judged_alone(
    first: &TeacherCandidate,
    s: usize,
    no_climb: Option<&str>,
) -> Option<TeacherChoice> {
    let name = &first.name;
    let reason = if beats(first.validation_errors, s) {
        format!(
            "{} beats it{} and is distilled from.",
            capitalized(name),
            how(s)
        )
    } else if s == 0 {
        format!("No teacher can make fewer, so no ladder is climbed: {name} is distilled from.")
    } else {
        format!("The teacher does not beat it{}; {}.", how(s), no_climb?)
    };
    Some(TeacherChoice {
        student_validation_errors: s,
        candidates: vec![first.clone()],
        chosen: 0,
        reason,
    })
}

/// How a teacher must beat `student` validation errors, as the report says it: " clearly"
/// where the count allows a clear lead (see [`beats`]).
fn how(student: usize) -> &'static str {
    match clearly_fewer(0, student) {
        true => " clearly",
        false => "",
    }
}

/// `s` with its first letter upper-case, to open a sentence.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// The first candidate that clearly beats the student alone, else the one with the fewest
/// validation errors (the earlier on a tie: it is the cheaper).
fn winner(candidates: &[TeacherCandidate], student: usize) -> usize {
    candidates
        .iter()
        .position(|c| beats(c.validation_errors, student))
        .unwrap_or_else(|| {
            (0..candidates.len())
                .min_by_key(|&i| (candidates[i].validation_errors, i))
                .unwrap_or(0)
        })
}

/// Why `chosen` was distilled from, in a sentence for the report.
fn reason(candidates: &[TeacherCandidate], chosen: usize, student: usize, ran_out: bool) -> String {
    let name = &candidates[chosen].name;
    let budget = match ran_out {
        true => " The time budget ran out before the next rung.",
        false => "",
    };
    let how = how(student);
    match beats(candidates[chosen].validation_errors, student) {
        true => format!(
            "The recipe's teacher does not beat it{how}; the ladder's \"{name}\" does and is \
             distilled from.{budget}"
        ),
        false => format!(
            "No candidate beats it{how}; \"{name}\", with the fewest validation errors, is \
             distilled from.{budget}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_within_sampling_noise_is_not_clear() {
        // 2 · sqrt(525) ≈ 45.8.
        assert!(!clearly_fewer(583, 525));
        assert!(!clearly_fewer(480, 525));
        assert!(clearly_fewer(479, 525));
        // MNIST-sized counts: 2 · sqrt(110) ≈ 21.
        assert!(clearly_fewer(70, 110));
        assert!(!clearly_fewer(0, 0));
    }

    #[test]
    fn with_few_errors_any_lead_wins_and_a_tie_never_does() {
        assert!(!beats(2, 2));
        assert!(beats(1, 2));
        assert!(!beats(0, 0));
        assert!(beats(0, 4));
        assert!(!beats(4, 4));
        // From 5 errors on a lead must be clear.
        assert!(!beats(1, 5));
    }

    #[test]
    fn the_winner_is_the_first_clear_one_else_the_fewest_errors() {
        let c = |v: usize| TeacherCandidate {
            name: format!("{v}"),
            model: String::new(),
            validation_errors: v,
            seconds: 0.0,
            epochs: String::new(),
        };
        assert_eq!(winner(&[c(583), c(300), c(200)], 525), 1);
        assert_eq!(winner(&[c(583), c(510), c(500)], 525), 2);
        assert_eq!(winner(&[c(500), c(510), c(500)], 525), 0);
    }
}
