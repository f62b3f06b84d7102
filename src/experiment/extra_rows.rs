//! Transfer sets beyond the labelled training rows, for tables: unlabelled rows from a file and
//! synthetic rows drawn by MUNGE. The teacher labels them: its soft targets are what the
//! student learns from them, and its most likely class stands in for the missing label in the
//! cross-entropy term.

use std::path::PathBuf;

use burn::tensor::Device;
use serde::Serialize;

use crate::data::{Label, Munge, Split, Splits, TableOptions, load_rows};
use crate::error::{Error, Result};
use crate::eval::{argmax, logits};
use crate::model::Predictor;

/// Rows added to a table's transfer set, as asked for.
#[derive(Debug, Clone, Default)]
pub struct ExtraRows {
    /// A file of unlabelled rows (any table format; a label column is ignored).
    pub file: Option<PathBuf>,
    /// Synthetic rows drawn from the transfer set's real rows.
    pub synthetic: Option<Munge>,
    /// How the file's rows are read (as the training rows were).
    pub table: TableOptions,
    /// Seeds MUNGE.
    pub seed: u64,
}

/// How many rows of each kind the student learns from, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    /// Labelled training rows.
    pub real: usize,
    /// Rows read from the transfer file.
    pub from_file: usize,
    /// Rows drawn by MUNGE.
    pub synthetic: usize,
}

impl std::fmt::Display for RowCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} real rows", self.real)?;
        if self.from_file > 0 {
            write!(
                f,
                " + {} unlabelled rows from the transfer file",
                self.from_file
            )?;
        }
        if self.synthetic > 0 {
            write!(f, " + {} synthetic rows (MUNGE)", self.synthetic)?;
        }
        Ok(())
    }
}

impl ExtraRows {
    /// True when nothing is added.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.synthetic.is_none()
    }

    /// `transfer` with its training rows extended by the file's rows and the synthetic rows,
    /// each labelled with `teacher`'s most likely class.
    pub fn extend(
        &self,
        transfer: Splits,
        teacher: &dyn Predictor,
        device: &Device,
    ) -> Result<(Splits, RowCounts)> {
        let real = transfer.train.len();
        let mut counts = RowCounts {
            real,
            from_file: 0,
            synthetic: 0,
        };
        if self.is_empty() {
            return Ok((transfer, counts));
        }
        let (Some(info), Some(standardize), Some(x)) = (
            transfer.dataset.table.as_ref(),
            transfer.dataset.standardize.as_ref(),
            transfer.train.feature_values(),
        ) else {
            return Err(Error::config(
                "unlabelled and synthetic transfer rows are for tables; this data is images",
            ));
        };
        let width = transfer.train.pixels;
        let mut rows = x.to_vec();
        if let Some(path) = &self.file {
            let more = load_rows(path, info, &self.table)?;
            counts.from_file = more.len() / width;
            rows.extend(more);
        }
        if let Some(m) = &self.synthetic {
            eprintln!(
                "MUNGE: {} synthetic rows from {real} training rows and their nearest neighbours",
                m.times * real
            );
            let groups = info.one_hot_groups();
            let drawn = m.draw(x, width, standardize, &groups, self.seed, device);
            counts.synthetic = drawn.len() / width;
            rows.extend(drawn);
        }
        let added = Split::features(
            rows[real * width..].to_vec(),
            vec![0; (rows.len() / width) - real],
            width,
        );
        let labels = teacher_labels(teacher, &added, device)?;
        let mut all_labels = transfer.train.labels.clone();
        all_labels.extend(labels);
        let train = Split::features(rows, all_labels, width);
        Ok((transfer.with_train(train), counts))
    }
}

/// The teacher's most likely class for each row.
fn teacher_labels(teacher: &dyn Predictor, rows: &Split, device: &Device) -> Result<Vec<Label>> {
    let classes = teacher.classes();
    let mut out = Vec::with_capacity(rows.len());
    let chunk = 16_384;
    for start in (0..rows.len()).step_by(chunk) {
        let idx: Vec<usize> = (start..(start + chunk).min(rows.len())).collect();
        let z = logits(teacher, &rows.subset(&idx), device)?;
        out.extend(z.chunks_exact(classes).map(|r| argmax(r) as Label));
    }
    Ok(out)
}
