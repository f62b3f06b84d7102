//! Parquet through the Apache Arrow crates: numbers and booleans become numeric columns, text
//! and dictionary-encoded text become text columns, and anything nested is refused by name.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Cells, Columns, bad};
use crate::error::{Error, Result};

/// Reads the columns of the Parquet file at `path`.
pub(super) fn read(path: &Path) -> Result<Columns> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(path, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for f in schema.fields() {
        if f.data_type().is_nested() {
            return Err(bad(
                path,
                format!(
                    "column '{}' is nested ({}); only flat columns of numbers or text can be \
                     features",
                    f.name(),
                    f.data_type()
                ),
            ));
        }
    }
    let reader = builder
        .build()
        .map_err(|e| bad(path, format!("not a readable Parquet file: {e}")))?;
    let mut cells: Vec<Cells> = schema
        .fields()
        .iter()
        .map(|f| match is_text(f.data_type()) {
            true => Cells::Text(Vec::new()),
            false => Cells::Numbers(Vec::new()),
        })
        .collect();
    for batch in reader {
        let batch = batch.map_err(|e| bad(path, format!("unreadable row group: {e}")))?;
        for ((column, name), out) in batch.columns().iter().zip(&names).zip(&mut cells) {
            append(column, out).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "column '{name}' has type {}, which is neither a number nor text",
                        column.data_type()
                    ),
                )
            })?;
        }
    }
    Ok(Columns {
        names,
        cells,
        labels_are_indices: false,
    })
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// Appends the values of `a` to `out`; `None` when its type is neither numbers nor text.
fn append(a: &ArrayRef, out: &mut Cells) -> Option<()> {
    match out {
        Cells::Numbers(v) => v.extend(numbers(a)?),
        Cells::Text(v) => v.extend(text(a)?),
    }
    Some(())
}

fn numbers(a: &ArrayRef) -> Option<Vec<f64>> {
    macro_rules! prim {
        ($($t:ty),*) => {
            $(if let Some(p) = a.as_primitive_opt::<$t>() {
                return Some(
                    (0..p.len())
                        .map(|i| if p.is_null(i) { f64::NAN } else { p.value(i) as f64 })
                        .collect(),
                );
            })*
        };
    }
    prim!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type
    );
    prim!(UInt64Type, Float32Type, Float64Type);
    if let Some(p) = a.as_primitive_opt::<Float16Type>() {
        return Some(
            (0..p.len())
                .map(|i| match p.is_null(i) {
                    true => f64::NAN,
                    false => p.value(i).to_f64(),
                })
                .collect(),
        );
    }
    let b = a.as_boolean_opt()?;
    Some(
        (0..b.len())
            .map(|i| match b.is_null(i) {
                true => f64::NAN,
                false => f64::from(u8::from(b.value(i))),
            })
            .collect(),
    )
}

fn text(a: &ArrayRef) -> Option<Vec<Option<String>>> {
    let get = |i: usize, s: &str| (!a.is_null(i)).then(|| s.to_string());
    if let Some(s) = a.as_string_opt::<i32>() {
        return Some((0..s.len()).map(|i| get(i, s.value(i))).collect());
    }
    if let Some(s) = a.as_string_opt::<i64>() {
        return Some((0..s.len()).map(|i| get(i, s.value(i))).collect());
    }
    if let Some(s) = a.as_string_view_opt() {
        return Some((0..s.len()).map(|i| get(i, s.value(i))).collect());
    }
    let d = a.as_any_dictionary_opt()?;
    let values = text(d.values())?;
    let keys = d.normalized_keys();
    Some(
        keys.iter()
            .enumerate()
            .map(|(i, &k)| match a.is_null(i) {
                true => None,
                false => values.get(k).cloned().flatten(),
            })
            .collect(),
    )
}
