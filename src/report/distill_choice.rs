//! How a recipe chose the temperature and soft-target weight of its distilled student: every
//! setting it trained a student at, judged on validation errors, and which one it kept.

use serde::{Deserialize, Serialize};

use super::Table;

/// One student of the grid, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Temperature T.
    pub temperature: f32,
    /// Soft-target weight alpha.
    pub alpha: f32,
    /// Validation errors of the student kept at this setting.
    pub validation_errors: Option<usize>,
    /// Seconds it trained.
    pub seconds: f64,
}

/// The grid's record: the settings in the order they were tried and the one kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillChoice {
    /// Every setting a student was trained at.
    pub points: Vec<GridPoint>,
    /// Index of the one kept.
    pub chosen: usize,
    /// How the grid was searched and how ties were broken.
    pub reason: String,
}

impl DistillChoice {
    /// The kept setting.
    pub fn chosen(&self) -> &GridPoint {
        &self.points[self.chosen]
    }

    /// One line: the choice and what each setting gave.
    pub fn sentence(&self) -> String {
        let c = self.chosen();
        let errors = match c.validation_errors {
            Some(1) => "1 validation error".to_string(),
            Some(e) => format!("{e} validation errors"),
            None => "no validation errors counted".to_string(),
        };
        format!(
            "T = {}, alpha = {} kept, with {errors}. {}",
            c.temperature, c.alpha, self.reason
        )
    }

    /// One row per setting tried.
    pub fn table(&self) -> Table {
        let rows = self
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                vec![
                    p.temperature.to_string(),
                    p.alpha.to_string(),
                    p.validation_errors.map_or("-".into(), |e| e.to_string()),
                    format!("{:.1}", p.seconds),
                    if i == self.chosen { "yes" } else { "" }.to_string(),
                ]
            })
            .collect();
        Table {
            header: vec!["T", "alpha", "validation errors", "train s", "kept"],
            rows,
        }
    }

    /// The report's section.
    pub fn markdown(&self) -> String {
        format!(
            "\n\n## Temperature and alpha chosen on validation\n\n{}\n\n{}\n",
            self.sentence(),
            self.table().markdown()
        )
    }
}
