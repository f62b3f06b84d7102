//! Feature tables: CSV and Parquet files read into rows of `f32` features with a class label.
//!
//! A reader only turns its format into named columns of numbers or text ([`Columns`]); this
//! module alone decides what the columns mean: which one is the label, how text becomes
//! features, what a missing value does, and where the test rows come from. So a CSV, a Parquet
//! file and an `.npz` of the same table give the same dataset, bit for bit.

mod assemble;
mod csv;
mod parquet;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, Label};
use crate::error::{Error, Result};

pub use assemble::Standardize;

/// How a table becomes a dataset, as the user asked for it. The defaults suit a table nobody
/// has prepared: the last column is the label, text columns are one-hot encoded, a fifth of the
/// rows is held out for testing when there is no test file, and missing values are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    /// The class column; `None`: the last column.
    pub label: Option<String>,
    /// What a text feature column becomes.
    pub strings: Strings,
    /// Fraction of the rows of each class held out as the test set when the data has no test
    /// file, in (0, 1).
    pub test_fraction: f64,
    /// What replaces a missing or non-finite feature; `None`: such a value is refused.
    pub impute: Option<Impute>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            label: None,
            strings: Strings::OneHot,
            test_fraction: 0.2,
            impute: None,
        }
    }
}

/// What a text feature column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strings {
    /// One 0/1 feature per distinct training value, in sorted order.
    OneHot,
    /// The column is refused by name.
    Refuse,
}

/// What replaces a missing feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Impute {
    /// The column's mean over the training rows.
    Mean,
}

/// What a table's columns became, recorded with the run so that the same encoding can be
/// applied again and a report can say what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The file format read: `csv`, `parquet` or `npz`.
    pub format: String,
    /// The class column.
    pub label: String,
    /// Feature names in the order the models take them; a one-hot feature is `column=value`.
    pub features: Vec<String>,
    /// The file's feature columns in order, each with its mean over the training rows (`None`
    /// for text): what encodes other rows, such as a transfer set's, as the training rows were.
    pub columns: Vec<(String, Option<f64>)>,
    /// Text columns and their categories, in encoding order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_hot: Vec<(String, Vec<String>)>,
    /// Columns with imputed values: name, values replaced, and the mean used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imputed: Vec<(String, usize, f64)>,
    /// Fraction of each class held out as the test set (seed 0), when the data had no test file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<f64>,
}

impl TableInfo {
    /// The one-hot groups among the features, as (first feature, width).
    pub fn one_hot_groups(&self) -> Vec<(usize, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        for (name, _) in &self.columns {
            match self.one_hot.iter().find(|(c, _)| c == name) {
                Some((_, cats)) => {
                    out.push((at, cats.len()));
                    at += cats.len();
                }
                None => at += 1,
            }
        }
        out
    }
}

/// The columns of a table as a reader found them, before any meaning is given to them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Columns {
    /// Column names, in file order.
    pub names: Vec<String>,
    /// One entry per column.
    pub cells: Vec<Cells>,
    /// The labels are class indices already (an `.npz`), not names to be sorted.
    pub labels_are_indices: bool,
}

/// The cells of one column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cells {
    /// Numbers; a missing cell is NaN.
    Numbers(Vec<f64>),
    /// Text; a missing cell is `None`.
    Text(Vec<Option<String>>),
}

impl Columns {
    /// The rows at `rows`, in that order.
    fn select(&self, rows: &[usize]) -> Columns {
        let cells = self
            .cells
            .iter()
            .map(|c| match c {
                Cells::Numbers(v) => Cells::Numbers(rows.iter().map(|&i| v[i]).collect()),
                Cells::Text(v) => Cells::Text(rows.iter().map(|&i| v[i].clone()).collect()),
            })
            .collect();
        Columns {
            names: self.names.clone(),
            cells,
            labels_are_indices: self.labels_are_indices,
        }
    }

    fn rows(&self) -> usize {
        self.cells.first().map_or(0, |c| match c {
            Cells::Numbers(v) => v.len(),
            Cells::Text(v) => v.len(),
        })
    }
}

/// A refusal of the table at `path`.
fn bad(path: &Path, reason: String) -> Error {
    Error::Dataset {
        dir: path.to_path_buf(),
        reason,
    }
}

/// True when `path` is a file in a table format this module reads, or a directory holding
/// `train.csv` or `train.parquet`.
pub fn is_table(path: &Path) -> bool {
    if path.is_dir() {
        return table_files(path).is_some();
    }
    format_of(path).is_some()
}

fn format_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some("csv"),
        "parquet" | "pq" => Some("parquet"),
        _ => None,
    }
}

/// The training and test files of a table directory.
fn table_files(dir: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    ["csv", "parquet"].iter().find_map(|ext| {
        let train = dir.join(format!("train.{ext}"));
        let test = dir.join(format!("test.{ext}"));
        train
            .is_file()
            .then(|| (train, test.is_file().then_some(test)))
    })
}

fn read_columns(path: &Path) -> Result<Columns> {
    match format_of(path) {
        Some("parquet") => parquet::read(path),
        _ => csv::read(path),
    }
}

/// Loads a table: one CSV or Parquet file (the test rows held out by `options.test_fraction`),
/// or a directory with `train.csv` and `test.csv` (or `.parquet`).
pub fn load_table(path: &Path, options: &TableOptions) -> Result<Dataset> {
    if !(options.test_fraction > 0.0 && options.test_fraction < 1.0) {
        return Err(Error::config(format!(
            "the test fraction must be in (0, 1), got {}",
            options.test_fraction
        )));
    }
    let (train_path, test_path) = match path.is_dir() {
        true => table_files(path).ok_or_else(|| Error::Dataset {
            dir: path.to_path_buf(),
            reason: "holds no train.csv or train.parquet".into(),
        })?,
        false => (path.to_path_buf(), None),
    };
    let format = format_of(&train_path).unwrap_or("csv");
    let train = read_columns(&train_path)?;
    let test = test_path
        .as_deref()
        .map(|p| read_columns(p).map(|c| (p, c)))
        .transpose()?;
    let name = match path.is_dir() {
        true => path.file_name(),
        false => path.file_stem(),
    }
    .map_or("table".into(), |s| s.to_string_lossy().into_owned());
    assemble::dataset(
        name,
        (&train_path, train),
        test.map(|(p, c)| (p.to_path_buf(), c)),
        format,
        options,
    )
}

/// The feature rows of the file at `path` (CSV, Parquet, or an `.npz`'s `x_train`), encoded
/// as the training rows `info` describes were; a label column, if there is one, is ignored.
/// Missing values are refused unless `options.impute` is set.
pub fn load_rows(path: &Path, info: &TableInfo, options: &TableOptions) -> Result<Vec<f32>> {
    if super::npz::is_npz(path) {
        let (x, width) = super::npz::load_feature_rows(path)?;
        let expect = info.features.len();
        if width != expect {
            return Err(Error::Mismatch(format!(
                "{}: x_train has {width} features per row but the training rows have {expect}",
                path.display()
            )));
        }
        let columns = Columns {
            names: info.columns.iter().map(|(n, _)| n.clone()).collect(),
            cells: (0..width)
                .map(|j| Cells::Numbers(x.iter().skip(j).step_by(width).copied().collect()))
                .collect(),
            labels_are_indices: true,
        };
        return assemble::encode_like(&columns, info, options, path);
    }
    if format_of(path).is_none() {
        return Err(Error::Dataset {
            dir: path.to_path_buf(),
            reason: "is not a .csv, .parquet or .npz file of rows".into(),
        });
    }
    assemble::encode_like(&read_columns(path)?, info, options, path)
}

/// A feature table given as arrays (an `.npz`): `train` and `test` are row-major features of
/// `width` columns, named `f0`, `f1`, ..., with their class indices.
pub(crate) fn load_arrays(
    path: &Path,
    width: usize,
    train: (Vec<f64>, Vec<Label>),
    test: (Vec<f64>, Vec<Label>),
    options: &TableOptions,
) -> Result<Dataset> {
    let columns = |(x, y): (Vec<f64>, Vec<Label>)| {
        let mut names: Vec<String> = (0..width).map(|j| format!("f{j}")).collect();
        names.push("label".into());
        let mut cells: Vec<Cells> = (0..width)
            .map(|j| Cells::Numbers(x.iter().skip(j).step_by(width.max(1)).copied().collect()))
            .collect();
        cells.push(Cells::Numbers(y.iter().map(|&l| f64::from(l)).collect()));
        Columns {
            names,
            cells,
            labels_are_indices: true,
        }
    };
    let options = TableOptions {
        label: None,
        ..options.clone()
    };
    let name = path
        .file_stem()
        .map_or("table".into(), |s| s.to_string_lossy().into_owned());
    assemble::dataset(
        name,
        (path, columns(train)),
        Some((path.to_path_buf(), columns(test))),
        "npz",
        &options,
    )
}

#[cfg(test)]
mod tests;
