//! How a recipe chose its teacher: every candidate it trained, judged on validation errors
//! against the student trained alone, and why the one it distilled from won.

use serde::{Deserialize, Serialize};

use super::Table;

/// A teacher the recipe trained, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherCandidate {
    /// What it is (`the preset's teacher`, `longer, lighter`, `cnn`).
    pub name: String,
    /// Its architecture.
    pub model: String,
    /// Validation errors of the model that was kept (its best epoch under early stopping).
    pub validation_errors: usize,
    /// Seconds it trained.
    pub seconds: f64,
    /// Epochs it trained, and why it stopped short of its schedule if it did.
    pub epochs: String,
}

/// The teacher ladder's record: the candidates in the order they were tried, which one was
/// distilled from, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherChoice {
    /// Validation errors of the student trained alone, the bar every candidate is judged by.
    pub student_validation_errors: usize,
    /// Every teacher trained, first the recipe's own.
    pub candidates: Vec<TeacherCandidate>,
    /// Index of the candidate distilled from.
    pub chosen: usize,
    /// Why that one.
    pub reason: String,
}

impl TeacherChoice {
    /// What the table is judged against, and why the chosen teacher won.
    pub fn sentence(&self) -> String {
        format!(
            "The student alone makes {} validation errors. {}",
            self.student_validation_errors, self.reason
        )
    }

    /// One row per candidate.
    pub fn table(&self) -> Table {
        let rows = self
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    c.name.clone(),
                    c.model.clone(),
                    c.validation_errors.to_string(),
                    c.epochs.clone(),
                    format!("{:.1}", c.seconds),
                    if i == self.chosen { "yes" } else { "" }.to_string(),
                ]
            })
            .collect();
        Table {
            header: vec![
                "candidate",
                "architecture",
                "validation errors",
                "epochs",
                "train s",
                "distilled from",
            ],
            rows,
        }
    }

    /// The report's section.
    pub fn markdown(&self) -> String {
        format!(
            "\n\n## Teacher chosen on validation\n\n{}\n\n{}\n",
            self.sentence(),
            self.table().markdown()
        )
    }
}
