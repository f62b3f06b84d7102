//! The temperature and soft-target weight chosen on validation. A preset's T = 20 and
//! alpha = 0.9 were set on MNIST; on other data the best pair differs (a weaker teacher or a
//! harder task wants a lower T), so a student is distilled at each setting of a small grid, and
//! the one with the fewest validation errors is kept. Every T's soft targets come from one pass
//! of the teacher over the transfer set (see `teacher_pass`), except where the teacher runs live
//! (shifted or blended transfer images) or over cached views. The test set is never read.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::student::{Distillation, Distilled, StudentRun, distill_student};
use crate::distill::DistillLoss;
use crate::error::{Error, Result};
use crate::report::{DistillChoice, GridPoint};
use crate::train::{RoleConfig, RunOutput};

/// Temperatures tried when T is chosen on validation.
pub const TEMPERATURES: [f32; 5] = [1.0, 2.0, 4.0, 8.0, 20.0];
/// Soft-target weights tried, at the chosen T, when alpha is chosen on validation.
pub const ALPHAS: [f32; 3] = [0.5, 0.9, 1.0];

/// A distillation setting given as a number or left to validation (`auto`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// Chosen on validation errors from a grid.
    Auto,
    /// This value.
    Value(f32),
}

impl FromStr for Pick {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(Pick::Auto),
            v => v
                .parse()
                .map(Pick::Value)
                .map_err(|_| Error::config(format!("must be a number or auto, got {s:?}"))),
        }
    }
}

/// One student of a grid: its setting, the loss the setting makes, and where it is written.
pub struct GridStudent {
    /// Temperature T.
    pub temperature: f32,
    /// Soft-target weight alpha.
    pub alpha: f32,
    /// The loss at this setting.
    pub loss: Arc<dyn DistillLoss>,
    /// Its model directory and progress label.
    pub output: RunOutput,
}

/// The students a grid has trained so far, and the best of them on validation.
#[derive(Default)]
pub struct Grid {
    points: Vec<GridPoint>,
    best: Option<(usize, Distilled)>,
}

impl Grid {
    /// Distills each of `students` from `d`'s teacher with `role`, keeping the one with the
    /// fewest validation errors; a student tried earlier keeps a tie, so that ties go to the
    /// lower T when T ascends. Returns the note on where the first student's soft targets came
    /// from (the first T is the one that runs the teacher).
    pub fn search(
        &mut self,
        d: &Distillation<'_>,
        role: &RoleConfig,
        students: Vec<GridStudent>,
    ) -> Result<String> {
        let mut note: Option<String> = None;
        for (k, s) in students.into_iter().enumerate() {
            let distillation = Distillation {
                loss: s.loss,
                announce: d.announce.filter(|_| k == 0 && self.points.is_empty()),
                ..d.clone()
            };
            let run = StudentRun {
                role,
                output: s.output,
            };
            let (student, n) = distill_student(distillation, run)?;
            note.get_or_insert(n);
            let t = &student.trained;
            self.points.push(GridPoint {
                temperature: s.temperature,
                alpha: s.alpha,
                validation_errors: t.validation_errors(),
                seconds: t.seconds,
            });
            if self
                .best
                .as_ref()
                .is_none_or(|(_, b)| t.beats_on_validation(&b.trained))
            {
                self.best = Some((self.points.len() - 1, student));
            }
        }
        Ok(note.unwrap_or_default())
    }

    /// The best setting so far.
    pub fn best_point(&self) -> Option<&GridPoint> {
        self.best.as_ref().map(|(i, _)| &self.points[*i])
    }

    /// The best student, where it was trained, and the grid's record with `reason`.
    pub fn into_choice(self, reason: String) -> Result<(Distilled, DistillChoice)> {
        let (chosen, best) = self
            .best
            .ok_or_else(|| Error::config("the distillation grid is empty"))?;
        let choice = DistillChoice {
            points: self.points,
            chosen,
            reason,
        };
        Ok((best, choice))
    }

    /// The best student, copied into `dir`, and the grid's record with `reason`.
    pub fn finish(self, dir: &Path, reason: String) -> Result<(Distilled, DistillChoice)> {
        let (mut best, choice) = self.into_choice(reason)?;
        crate::model::copy_model(&best.dir, dir)?;
        best.dir = dir.to_path_buf();
        Ok((best, choice))
    }
}

/// Searches T over `temperatures` at `alpha`, then with `alpha_auto` the other weights of
/// [`ALPHAS`] at the best T, each student made by `student(T, alpha)`; the grid and the note on
/// where the soft targets came from.
pub fn search(
    d: &Distillation<'_>,
    role: &RoleConfig,
    (temperatures, alpha, alpha_auto): (&[f32], f32, bool),
    student: impl Fn(f32, f32) -> Result<GridStudent>,
) -> Result<(Grid, String)> {
    let Some(&first_t) = temperatures.first() else {
        return Err(Error::config("the distillation grid is empty"));
    };
    let mut grid = Grid::default();
    let first = temperatures
        .iter()
        .map(|&t| student(t, alpha))
        .collect::<Result<Vec<_>>>()?;
    let note = grid.search(d, role, first)?;
    if alpha_auto {
        let t = grid.best_point().map_or(first_t, |p| p.temperature);
        let others = ALPHAS
            .into_iter()
            .filter(|&a| a != alpha)
            .map(|a| student(t, a))
            .collect::<Result<Vec<_>>>()?;
        grid.search(d, role, others)?;
    }
    crate::distill::release_kept_pass();
    Ok((grid, note))
}

/// Where a grid's student at `temperature` and `alpha` goes under `root`.
pub fn grid_dir(root: &Path, temperature: f32, alpha: f32) -> PathBuf {
    root.join("grid").join(format!("T{temperature}-a{alpha}"))
}

/// What a grid searched, for the report: which settings were chosen on validation and how
/// ties were broken.
pub fn grid_reason(temperature: bool, alpha: bool) -> String {
    let what = match (temperature, alpha) {
        (true, true) => {
            "T was chosen first, then alpha at that T; on a tie the setting tried first is kept \
             (the lower T, then the given alpha)"
        }
        (true, false) => "T was chosen at the given alpha; on a tie the lower T is kept",
        (false, true) => "alpha was chosen at the given T; on a tie the given alpha is kept",
        (false, false) => "one setting was trained",
    };
    format!("{what}. Every choice read validation errors only.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pick_is_auto_or_a_number() {
        assert_eq!("auto".parse::<Pick>().ok(), Some(Pick::Auto));
        assert_eq!("4".parse::<Pick>().ok(), Some(Pick::Value(4.0)));
        assert!("warm".parse::<Pick>().is_err());
    }
}
