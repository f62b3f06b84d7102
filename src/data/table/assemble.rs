//! From named columns to a dataset: the label, the class mapping, the feature encoding, missing
//! values and the test hold-out. Every choice is made on the training rows alone.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{Cells, Columns, Impute, Strings, TableInfo, TableOptions, bad};
use crate::data::dataset::{Dataset, ImageShape, Label};
use crate::data::split::Split;
use crate::error::{Error, Result, Setting};

/// Per-feature standardization, `(x - mean) * scale`, fitted on training rows and carried by
/// the models trained on them, so that they take raw features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// One over each feature's standard deviation (1 for a constant feature).
    pub scale: Vec<f32>,
}

impl Standardize {
    /// Fits the statistics of `rows` (row-major, `width` values each), accumulating in `f64`.
    ///
    /// ```
    /// let s = distill::data::Standardize::fit(&[1.0, 10.0, 3.0, 10.0], 2);
    /// assert_eq!(s.mean, [2.0, 10.0]);
    /// assert_eq!(s.scale, [1.0, 1.0]); // one over the deviation; a constant feature keeps 1
    /// ```
    pub fn fit(rows: &[f32], width: usize) -> Standardize {
        let n = (rows.len() / width.max(1)).max(1) as f64;
        let mut sum = vec![0f64; width];
        let mut sq = vec![0f64; width];
        for row in rows.chunks_exact(width.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                sum[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let scale = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n - m * m).max(0.0).sqrt();
                if sd > 1e-12 { (1.0 / sd) as f32 } else { 1.0 }
            })
            .collect();
        Standardize {
            mean: mean.iter().map(|&m| m as f32).collect(),
            scale,
        }
    }
}

/// Builds the dataset: `train` from `train_path`, and `test` if the data has a test file.
pub(super) fn dataset(
    name: String,
    (train_path, train): (&Path, Columns),
    test: Option<(PathBuf, Columns)>,
    format: &str,
    options: &TableOptions,
) -> Result<Dataset> {
    let label = label_column(&train, options, train_path)?;
    check_file(train_path, &train, test.as_ref(), label, options)?;
    let train_labels = label_text(&train.cells[label], &train.names[label], train_path)?;
    let classes = class_names(&train_labels, train.labels_are_indices);
    let (train, train_labels, test, held_out) = match test {
        Some((path, t)) => {
            let labels = label_text(&t.cells[label], &t.names[label], &path)?;
            (train, train_labels, (path, t, labels), None)
        }
        None => {
            let y = class_indices(&train_labels, &classes, train_path)?;
            let (tr, te) = hold_out(&y, classes.len(), options.test_fraction);
            let pick = |rows: &[usize]| rows.iter().map(|&i| train_labels[i].clone()).collect();
            let test = (train_path.to_path_buf(), train.select(&te), pick(&te));
            let train = (train.select(&tr), pick(&tr));
            (train.0, train.1, test, Some(options.test_fraction))
        }
    };
    let encoder = Encoder::fit(&train, label, options);
    let split = |path: &Path, t: &Columns, labels: &[String]| -> Result<Split> {
        let x = encoder.encode(t, path)?;
        let y = class_indices(labels, &classes, path)?;
        Ok(Split::features(x, y, encoder.width()))
    };
    let train_split = split(train_path, &train, &train_labels)?;
    encoder.check_not_constant(train_split.feature_values().unwrap_or_default(), train_path)?;
    let (test_path, test, test_labels) = test;
    let test_split = split(&test_path, &test, &test_labels)?;
    let shape = ImageShape::features(encoder.width());
    let mut ds = Dataset::new(
        name,
        train_path,
        shape,
        classes.len(),
        train_split,
        test_split,
    )?;
    ds.class_names = Some(classes);
    ds.table = Some(TableInfo {
        format: format.into(),
        label: train.names[label].clone(),
        features: encoder.names(),
        columns: encoder.columns(),
        one_hot: encoder.one_hot(),
        imputed: encoder.imputed,
        held_out,
    });
    Ok(ds)
}

/// Refusals about the whole file, before any row is held out, so that they name the file's own
/// row numbers: a test file with other columns, no rows, missing values, refused text.
fn check_file(
    train_path: &Path,
    train: &Columns,
    test: Option<&(PathBuf, Columns)>,
    label: usize,
    options: &TableOptions,
) -> Result<()> {
    if let Some((path, t)) = test
        && t.names != train.names
    {
        return Err(bad(
            path,
            format!(
                "has columns [{}] but {} has [{}]: both files need the same columns in the same order",
                t.names.join(", "),
                train_path.display(),
                train.names.join(", ")
            ),
        ));
    }
    if train.rows() == 0 {
        return Err(bad(train_path, "the table has no rows".into()));
    }
    if options.impute.is_none() {
        refuse_missing(train, label, train_path)?;
    }
    if options.strings == Strings::Refuse {
        refuse_text(train, label, train_path)?;
    }
    Ok(())
}

/// The rows of `t` encoded as `info`'s training rows were (see [`super::load_rows`]).
pub(super) fn encode_like(
    t: &Columns,
    info: &TableInfo,
    options: &TableOptions,
    path: &Path,
) -> Result<Vec<f32>> {
    if t.rows() == 0 {
        return Err(bad(path, "the table has no rows".into()));
    }
    Encoder::like(info, t, options, path)?.encode(t, path)
}

fn label_column(t: &Columns, options: &TableOptions, path: &Path) -> Result<usize> {
    if t.names.len() < 2 {
        return Err(bad(
            path,
            format!(
                "has {} column(s); a table needs at least one feature column and a label column",
                t.names.len()
            ),
        ));
    }
    match &options.label {
        None => Ok(t.names.len() - 1),
        Some(l) => t.names.iter().position(|n| n == l).ok_or_else(|| {
            bad(
                path,
                format!(
                    "has no label column '{l}' (columns: {})",
                    t.names.join(", ")
                ),
            )
        }),
    }
}

/// The label of every row as text: numbers print as integers where they are integers.
fn label_text(cells: &Cells, column: &str, path: &Path) -> Result<Vec<String>> {
    let missing = |row: usize| {
        bad(
            path,
            format!(
                "row {}, label column '{column}': the label is missing",
                row + 1
            ),
        )
    };
    match cells {
        Cells::Numbers(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| match x.is_finite() {
                true if x.fract() == 0.0 && x.abs() < 1e15 => Ok(format!("{}", x as i64)),
                true => Ok(format!("{x}")),
                false => Err(missing(i)),
            })
            .collect(),
        Cells::Text(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| s.clone().ok_or_else(|| missing(i)))
            .collect(),
    }
}

/// Distinct training labels in the order scikit-learn gives its classes: numeric order when
/// every label is a number, text order otherwise. Labels that are indices already name the
/// classes `0` to the largest.
fn class_names(labels: &[String], indices: bool) -> Vec<String> {
    if indices {
        let top = labels.iter().filter_map(|l| l.parse::<usize>().ok()).max();
        return (0..=top.unwrap_or(0)).map(|c| c.to_string()).collect();
    }
    let distinct: BTreeSet<&String> = labels.iter().collect();
    let mut names: Vec<String> = distinct.into_iter().cloned().collect();
    let numbers: Option<Vec<f64>> = names.iter().map(|s| s.parse::<f64>().ok()).collect();
    if let Some(n) = numbers {
        let mut pairs: Vec<(f64, String)> = n.into_iter().zip(names).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        names = pairs.into_iter().map(|(_, s)| s).collect();
    }
    names
}

fn class_indices(labels: &[String], classes: &[String], path: &Path) -> Result<Vec<Label>> {
    let index: HashMap<&str, Label> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as Label))
        .collect();
    labels
        .iter()
        .enumerate()
        .map(|(row, l)| {
            index.get(l.as_str()).copied().ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "row {}: label '{l}' does not occur in the training rows (classes: {})",
                        row + 1,
                        classes.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// How each feature column becomes model inputs, fitted on the training rows.
struct Encoder {
    columns: Vec<(String, Column)>,
    impute: Option<Impute>,
    imputed: Vec<(String, usize, f64)>,
}

enum Column {
    /// Read as it is; `fill` replaces a missing value when imputing.
    Number { source: usize, fill: f64 },
    /// One feature per category.
    OneHot {
        source: usize,
        categories: Vec<String>,
    },
}

impl Encoder {
    fn fit(t: &Columns, label: usize, options: &TableOptions) -> Encoder {
        let mut columns = Vec::new();
        for (source, (name, cells)) in t.names.iter().zip(&t.cells).enumerate() {
            if source == label {
                continue;
            }
            let column = match cells {
                Cells::Numbers(v) => {
                    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                    let fill = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
                    Column::Number { source, fill }
                }
                Cells::Text(v) => {
                    let set: BTreeSet<&String> = v.iter().flatten().collect();
                    let categories = set.into_iter().cloned().collect();
                    Column::OneHot { source, categories }
                }
            };
            columns.push((name.clone(), column));
        }
        let mut encoder = Encoder {
            columns,
            impute: options.impute,
            imputed: Vec::new(),
        };
        encoder.imputed = encoder.count_imputed(t);
        encoder
    }

    fn count_imputed(&self, t: &Columns) -> Vec<(String, usize, f64)> {
        if self.impute.is_none() {
            return Vec::new();
        }
        self.columns
            .iter()
            .filter_map(|(name, c)| match c {
                Column::Number { source, fill } => match &t.cells[*source] {
                    Cells::Numbers(v) => {
                        let n = v.iter().filter(|x| !x.is_finite()).count();
                        (n > 0).then(|| (name.clone(), n, *fill))
                    }
                    Cells::Text(_) => None,
                },
                Column::OneHot { .. } => None,
            })
            .collect()
    }

    /// An encoder for rows of `t` that encodes them as `info`'s training rows were, finding
    /// each training column in `t` by name.
    fn like(info: &TableInfo, t: &Columns, options: &TableOptions, path: &Path) -> Result<Encoder> {
        let mut columns = Vec::new();
        for (name, mean) in &info.columns {
            let source = t.names.iter().position(|n| n == name).ok_or_else(|| {
                bad(
                    path,
                    format!("has no column '{name}', which the training rows have"),
                )
            })?;
            let column = match info.one_hot.iter().find(|(c, _)| c == name) {
                Some((_, categories)) => Column::OneHot {
                    source,
                    categories: categories.clone(),
                },
                None => Column::Number {
                    source,
                    fill: mean.unwrap_or(0.0),
                },
            };
            columns.push((name.clone(), column));
        }
        Ok(Encoder {
            columns,
            impute: options.impute,
            imputed: Vec::new(),
        })
    }

    fn columns(&self) -> Vec<(String, Option<f64>)> {
        self.columns
            .iter()
            .map(|(name, c)| match c {
                Column::Number { fill, .. } => (name.clone(), Some(*fill)),
                Column::OneHot { .. } => (name.clone(), None),
            })
            .collect()
    }

    fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|(_, c)| match c {
                Column::Number { .. } => 1,
                Column::OneHot { categories, .. } => categories.len(),
            })
            .sum()
    }

    fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, c) in &self.columns {
            match c {
                Column::Number { .. } => out.push(name.clone()),
                Column::OneHot { categories, .. } => {
                    out.extend(categories.iter().map(|v| format!("{name}={v}")))
                }
            }
        }
        out
    }

    fn one_hot(&self) -> Vec<(String, Vec<String>)> {
        self.columns
            .iter()
            .filter_map(|(name, c)| match c {
                Column::OneHot { categories, .. } => Some((name.clone(), categories.clone())),
                Column::Number { .. } => None,
            })
            .collect()
    }

    /// The feature rows of `t`, row-major. A category unseen in training encodes as all zeros.
    fn encode(&self, t: &Columns, path: &Path) -> Result<Vec<f32>> {
        let (rows, width) = (t.rows(), self.width());
        let mut out = vec![0f32; rows * width];
        let mut at = 0;
        for (name, c) in &self.columns {
            // A column with no value at all reads as text; for a numeric column it is all missing.
            let empty;
            let cells = match &t.cells[source_of(c)] {
                Cells::Text(v) if v.iter().all(Option::is_none) => {
                    empty = Cells::Numbers(vec![f64::NAN; v.len()]);
                    match c {
                        Column::Number { .. } => &empty,
                        Column::OneHot { .. } => &t.cells[source_of(c)],
                    }
                }
                cells => cells,
            };
            match (c, cells) {
                (Column::Number { fill, .. }, Cells::Numbers(v)) => {
                    for (r, &x) in v.iter().enumerate() {
                        out[r * width + at] = self.fill(x, *fill, name, r, path)? as f32;
                    }
                    at += 1;
                }
                (Column::OneHot { categories, .. }, Cells::Text(v)) => {
                    for (r, s) in v.iter().enumerate() {
                        match s {
                            Some(s) => {
                                if let Ok(k) = categories.binary_search(s) {
                                    out[r * width + at + k] = 1.0;
                                }
                            }
                            None if self.impute.is_some() => {}
                            None => return Err(missing(path, r, name)),
                        }
                    }
                    at += categories.len();
                }
                _ => {
                    return Err(bad(
                        path,
                        format!("column '{name}' holds text here but numbers in the training rows"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn fill(&self, x: f64, fill: f64, name: &str, row: usize, path: &Path) -> Result<f64> {
        match (x.is_finite(), self.impute) {
            (true, _) => Ok(x),
            (false, Some(Impute::Mean)) => Ok(fill),
            (false, None) => Err(missing(path, row, name)),
        }
    }

    fn check_not_constant(&self, x: &[f32], path: &Path) -> Result<()> {
        let width = self.width();
        if width == 0 {
            return Err(bad(path, "the table has no feature column".into()));
        }
        let first = &x[..width];
        if x.chunks_exact(width).all(|row| row == first) {
            return Err(bad(
                path,
                "every row has the same features: a constant table has nothing to learn".into(),
            ));
        }
        Ok(())
    }
}

fn source_of(c: &Column) -> usize {
    match c {
        Column::Number { source, .. } | Column::OneHot { source, .. } => *source,
    }
}

fn missing(path: &Path, row: usize, column: &str) -> Error {
    bad(
        path,
        format!(
            "row {}, column '{column}': the value is missing or not finite; give {} mean \
             to replace such values with the column's training mean",
            row + 1,
            Setting::Impute
        ),
    )
}

fn refuse_missing(t: &Columns, label: usize, path: &Path) -> Result<()> {
    for (c, (name, cells)) in t.names.iter().zip(&t.cells).enumerate() {
        let row = match cells {
            _ if c == label => None,
            Cells::Numbers(v) => v.iter().position(|x| !x.is_finite()),
            Cells::Text(v) => v.iter().position(Option::is_none),
        };
        if let Some(row) = row {
            return Err(missing(path, row, name));
        }
    }
    Ok(())
}

fn refuse_text(t: &Columns, label: usize, path: &Path) -> Result<()> {
    for (c, (name, cells)) in t.names.iter().zip(&t.cells).enumerate() {
        let Cells::Text(v) = cells else { continue };
        if c == label {
            continue;
        }
        if let Some((row, value)) = v
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.as_ref().map(|s| (i + 1, s)))
        {
            return Err(bad(
                path,
                format!(
                    "column '{name}' holds text ('{value}' in row {row}); drop it, or give \
                     {} one-hot to encode it",
                    Setting::Strings
                ),
            ));
        }
    }
    Ok(())
}

/// Rows held out as the test set: `fraction` of each class, with a fixed seed so that every
/// run of every model tests on the same rows. Both lists keep the file's row order.
fn hold_out(labels: &[Label], classes: usize, fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut is_test = vec![false; labels.len()];
    for c in 0..classes {
        let mut rows: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == c)
            .collect();
        rows.shuffle(&mut rng);
        let k = (rows.len() as f64 * fraction).round() as usize;
        for &i in &rows[..k.min(rows.len())] {
            is_test[i] = true;
        }
    }
    (0..labels.len()).partition(|&i| !is_test[i])
}
