//! `report.md`: the same reading order as the HTML page, with the PNG charts beside it.

use std::fmt::Write as _;

use super::{DistillChoice, Report, TeacherChoice};

impl Report {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# {}\n\n**{}**\n\n{}\n\n{}\n",
            self.title(),
            self.headline_text(),
            self.recipe_line(),
            self.table()
        );
        s += &self.settings_markdown();
        s += &(self.teacher_choice.as_ref()).map_or(String::new(), TeacherChoice::markdown);
        s += &(self.distill_choice.as_ref()).map_or(String::new(), DistillChoice::markdown);
        if let Some(t) = self.size_speed_table() {
            let _ = write!(
                s,
                "\n## Size and speed\n\nEach model as an ONNX file, run on this machine.\n\n{}\n",
                t.markdown()
            );
        }
        if let (Some(c), Some((header, rows))) = (&self.changed, self.changed_grid()) {
            let _ = write!(
                s,
                "\n## What distillation changed\n\n{}\n\n| {} |\n| --- |{}\n",
                c.sentence(),
                header.join(" | "),
                " ---: |".repeat(header.len() - 1)
            );
            for r in rows {
                let _ = writeln!(s, "| {} |", r.join(" | "));
            }
            s += "\n";
            for stem in ["changed", "changed_gallery", "errors_moved"] {
                s += &self.png(stem);
            }
        }
        s += &self.class_errors_markdown();
        s += "\n## Training\n\n";
        s += &self.png("learning_curves");
        if let Some(v) = self.validation_sentence() {
            let _ = writeln!(s, "{v}\n");
        }
        s += &self.run_markdown();
        if let Some(dk) = &self.dark_knowledge {
            s += "\n## Dark knowledge\n\n";
            for l in dk.summary() {
                let _ = writeln!(s, "- {l}");
            }
            s += "\n";
            s += &self.png("soften");
            s += &self.png("similarity_teacher");
        }
        if !self.notes.is_empty() {
            s += "\n## Notes\n\n";
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// The distillation settings and the data, in a paragraph or two.
    fn settings_markdown(&self) -> String {
        let mut s = String::new();
        let inputs = match &self.dataset.table {
            Some(t) => format!("{} features", t.features.len()),
            None => format!("{}x{} images", self.dataset.image[0], self.dataset.image[1]),
        };
        let _ = writeln!(
            s,
            "\nDistillation: T = {}, alpha = {}. Dataset {}: {} training, {} validation, {} test \
             examples, {inputs}, {} classes.",
            self.temperature,
            self.alpha,
            self.dataset.name,
            self.dataset.train_size,
            self.dataset.validation_size,
            self.dataset.test_size,
            self.dataset.classes
        );
        if let Some(held) = self.dataset.table.as_ref().and_then(|t| t.held_out) {
            let _ = writeln!(
                s,
                "\nThe data had no test file: {:.0}% of each class was held out as the test set \
                 (seed 0).",
                100.0 * held
            );
        }
        s
    }

    /// A Markdown image of the chart `stem` when it was drawn.
    fn png(&self, stem: &str) -> String {
        let file = format!("{stem}.png");
        match self.has_chart(&file) {
            true => format!("![{stem}]({file})\n\n"),
            false => String::new(),
        }
    }

    fn class_errors_markdown(&self) -> String {
        let mut s = "\n## Test errors per true class\n\n| model |".to_string();
        let classes = self.dataset.classes;
        // The data's own names where it has them (image folders, tables), indices otherwise.
        let names = self.dataset.class_names.as_deref().unwrap_or_default();
        for c in 0..classes {
            match names.get(c) {
                Some(n) => {
                    let _ = write!(s, " {} |", n.replace('|', "\\|"));
                }
                None => {
                    let _ = write!(s, " {c} |");
                }
            }
        }
        s += "\n| --- |";
        s += &" ---: |".repeat(classes);
        s += "\n";
        for (name, m) in self.ordered_models() {
            let _ = write!(s, "| {name} |");
            for e in &m.class_errors {
                let _ = write!(s, " {e} |");
            }
            s += "\n";
        }
        s + "\n" + &self.png("class_errors")
    }

    fn run_markdown(&self) -> String {
        let mut s = format!(
            "\n## Run\n\n- seed: {}\n- backend: {}, {} threads\n- hardware: {}\n- commit: {}\n\
             - versions: {}\n- os: {}\n- total time: {:.1} s\n",
            self.seed,
            self.backend,
            self.environment.threads,
            self.environment.hardware,
            self.git_commit,
            self.environment
                .versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.environment.os,
            self.total_seconds
        );
        if let Some(b) = &self.bias_adjust {
            let _ = writeln!(s, "\n{}", self.bias_sentence(b));
        }
        if !self.findings.is_empty() {
            s += "\n## Findings\n\n";
            for (k, v) in &self.findings {
                let _ = writeln!(s, "- {k}: {v:.4}");
            }
        }
        s
    }
}
