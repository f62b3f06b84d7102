//! CSV with a header row, read with the `csv` crate. A column is numeric when its first
//! present value is a number; a later value that is not is refused, since a typo in a numeric
//! column would otherwise turn every value of it into a category.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use super::{Cells, Columns, bad};
use crate::error::{Error, Result};

/// Cells read as missing values.
const MISSING: [&str; 9] = ["", "NA", "N/A", "NaN", "nan", "?", "null", "NULL", "None"];

/// Reads the columns of the CSV file at `path`.
pub(super) fn read(path: &Path) -> Result<Columns> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, format!("unreadable header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    check_names(&names, path)?;
    let mut text: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| record_error(e, row, names.len(), path))?;
        for (column, field) in text.iter_mut().zip(record.iter()) {
            column.push(field.trim().to_string());
        }
    }
    let cells = names
        .iter()
        .zip(text)
        .map(|(name, column)| cells(name, column, path))
        .collect::<Result<_>>()?;
    Ok(Columns {
        names,
        cells,
        labels_are_indices: false,
    })
}

fn check_names(names: &[String], path: &Path) -> Result<()> {
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(bad(path, format!("header column {} has no name", i + 1)));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(bad(path, format!("the header names column '{dup}' twice")));
    }
    Ok(())
}

fn record_error(e: ::csv::Error, row: usize, width: usize, path: &Path) -> Error {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths { len, pos, .. } => bad(
            path,
            format!(
                "row {} (line {}) has {len} fields but the header has {width}",
                row + 1,
                pos.as_ref().map_or(row as u64 + 2, |p| p.line())
            ),
        ),
        _ => bad(path, format!("row {}: unreadable ({e})", row + 1)),
    }
}

fn is_missing(s: &str) -> bool {
    MISSING.contains(&s)
}

/// Numbers if the first present value is one, text otherwise.
fn cells(name: &str, column: Vec<String>, path: &Path) -> Result<Cells> {
    let first = column.iter().position(|s| !is_missing(s));
    let numeric = first.is_some_and(|i| column[i].parse::<f64>().is_ok());
    if !numeric {
        return Ok(Cells::Text(
            column
                .into_iter()
                .map(|s| (!is_missing(&s)).then_some(s))
                .collect(),
        ));
    }
    let first = first.unwrap_or(0);
    column
        .iter()
        .enumerate()
        .map(|(row, s)| match s.parse::<f64>() {
            Ok(v) => Ok(v),
            Err(_) if is_missing(s) => Ok(f64::NAN),
            Err(_) => Err(bad(
                path,
                format!(
                    "row {}, column '{name}': '{s}' is not a number, but the column's first \
                     value ('{}', row {}) is",
                    row + 1,
                    column[first],
                    first + 1
                ),
            )),
        })
        .collect::<Result<Vec<f64>>>()
        .map(Cells::Numbers)
}
