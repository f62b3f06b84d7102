//! NumPy `.npz` datasets in the layout of `keras.datasets.mnist` and friends: arrays
//! `x_train`, `y_train`, `x_test`, `y_test`; images `[N, H, W]`, `[N, H, W, C]` or (as PyTorch
//! holds them) `[N, C, H, W]`, as `uint8` (0 to 255) or floats in [0, 1]; labels any integer
//! type, `[N]` or `[N, 1]` (as `keras.datasets.cifar10` gives them), or one-hot rows `[N, K]`
//! (as `keras.utils.to_categorical` makes them). Arrays saved in Fortran order are read in it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use npyz::{DType, NpyFile, TypeChar};

use super::dataset::{Dataset, ImageShape, Label};
use super::split::Split;
use super::table::TableOptions;
use crate::error::{Error, Result};

/// Deflate cannot expand data by more than about 1,032 to 1: an array that claims more than
/// this times its compressed size is lying about its shape.
const MAX_RATIO: u64 = 1100;

/// True when `path` names an `.npz` file.
pub fn is_npz(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

fn bad(path: &Path, reason: String) -> Error {
    Error::Dataset {
        dir: path.to_path_buf(),
        reason,
    }
}

/// One array of the archive: its shape, and its values widened to `f64` (labels and pixels both
/// fit exactly).
struct Array {
    shape: Vec<usize>,
    kind: TypeChar,
    values: Vec<f64>,
}

fn read_array(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    path: &Path,
) -> Result<Array> {
    let entry = archive.by_name(&format!("{name}.npy")).map_err(|_| {
        bad(
            path,
            format!(
                "the archive has no array {name:?} (expected x_train, y_train, x_test, y_test)"
            ),
        )
    })?;
    let (size, compressed) = (entry.size(), entry.compressed_size());
    let file = NpyFile::new(entry)
        .map_err(|e| bad(path, format!("array {name}: not a valid .npy entry ({e})")))?;
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let DType::Plain(ty) = file.dtype() else {
        return Err(bad(
            path,
            format!("array {name}: structured arrays are not supported"),
        ));
    };
    let width = ty.num_bytes().unwrap_or(0) as u64;
    let declared = file
        .shape()
        .iter()
        .try_fold(width, |acc, &d| acc.checked_mul(d));
    let fits = declared
        .is_some_and(|d| d <= size && d <= compressed.saturating_mul(MAX_RATIO).max(1 << 20));
    if !fits {
        return Err(bad(
            path,
            format!(
                "array {name}: its shape {shape:?} of {ty} claims more data than the archive holds ({size} bytes)"
            ),
        ));
    }
    let kind = ty.type_char();
    let order = file.order();
    let Some(values) = widened(file, kind, width) else {
        return Err(bad(
            path,
            format!("array {name}: dtype {ty} is not an integer or float type"),
        ));
    };
    let values = values.map_err(|e| bad(path, format!("array {name}: unreadable ({e})")))?;
    let values = match order {
        npyz::Order::C => values,
        npyz::Order::Fortran => c_order(&values, &shape),
    };
    Ok(Array {
        shape,
        kind,
        values,
    })
}

/// The values of `file` widened to `f64`, or `None` when its type is not an integer or float
/// of `width` bytes.
fn widened<R: std::io::Read>(
    file: NpyFile<R>,
    kind: TypeChar,
    width: u64,
) -> Option<std::io::Result<Vec<f64>>> {
    Some(match (kind, width) {
        (TypeChar::Uint, 1) => file
            .into_vec::<u8>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Uint, 2) => file
            .into_vec::<u16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Uint, 4) => file
            .into_vec::<u32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Uint, 8) => file
            .into_vec::<u64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        (TypeChar::Int, 1) => file
            .into_vec::<i8>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Int, 2) => file
            .into_vec::<i16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Int, 4) => file
            .into_vec::<i32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Int, 8) => file
            .into_vec::<i64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        (TypeChar::Float, 4) => file
            .into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        (TypeChar::Float, 8) => file.into_vec::<f64>(),
        _ => return None,
    })
}

/// The values of an array stored in Fortran order (first index fastest), rearranged into C
/// order (last index fastest), which the rest of the reader assumes.
fn c_order(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut strides = vec![1; shape.len()];
    for d in 1..shape.len() {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut index = vec![0; shape.len()];
    let mut out = Vec::with_capacity(values.len());
    for _ in 0..values.len() {
        out.push(
            values[index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()],
        );
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Pixels as bytes, channel-major: `uint8` as they are, floats in [0, 1] scaled by 255.
fn images(a: &Array, name: &str, path: &Path) -> Result<(ImageShape, Vec<u8>)> {
    // A last size of 1 or 3 reads as channels-last (Keras), as the documented layout says;
    // otherwise a second size of 1 or 3 reads as channels-first (PyTorch).
    let (n, h, w, c, channels_last) = match a.shape[..] {
        [n, h, w] => (n, h, w, 1, true),
        [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c, true),
        [n, c, h, w] if c == 1 || c == 3 => (n, h, w, c, false),
        _ => {
            return Err(bad(
                path,
                format!(
                    "array {name} has shape {:?}; images must be [N, H, W], [N, H, W, C] or \
                     [N, C, H, W] with C = 1 or 3",
                    a.shape
                ),
            ));
        }
    };
    let float = a.kind == TypeChar::Float;
    let to_byte = |v: f64| -> Option<u8> {
        let v = if float { v * 255.0 } else { v };
        (v.is_finite() && (-0.5..=255.5).contains(&v)).then(|| v.round().clamp(0.0, 255.0) as u8)
    };
    let plane = h * w;
    let mut out = vec![0u8; a.values.len()];
    for img in 0..n {
        for p in 0..plane {
            for ch in 0..c {
                let v = match channels_last {
                    true => a.values[(img * plane + p) * c + ch],
                    false => a.values[(img * c + ch) * plane + p],
                };
                out[(img * c + ch) * plane + p] = to_byte(v).ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "array {name}: value {v} of image {img} is outside {}",
                            if float {
                                "[0, 1] (float images are read as 0 to 1; save 0-255 pixels \
                                 as uint8)"
                            } else {
                                "0..255"
                            }
                        ),
                    )
                })?;
            }
        }
    }
    Ok((
        ImageShape {
            channels: c,
            height: h,
            width: w,
        },
        out,
    ))
}

fn labels(a: &Array, name: &str, path: &Path) -> Result<Vec<Label>> {
    if let [n, k] = a.shape[..]
        && k > 1
    {
        return one_hot(&a.values, n, k).ok_or_else(|| {
            bad(
                path,
                format!(
                    "array {name} has shape {:?}: labels must be integers [N] or [N, 1], or \
                     one-hot rows (a single 1, the rest 0)",
                    a.shape
                ),
            )
        });
    }
    if !matches!(a.shape[..], [_] | [_, 1]) || a.kind == TypeChar::Float {
        return Err(bad(
            path,
            format!(
                "array {name} must be a vector of integer labels, found shape {:?}{}",
                a.shape,
                if a.kind == TypeChar::Float {
                    " of floats"
                } else {
                    ""
                }
            ),
        ));
    }
    a.values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (0.0..=u32::MAX as f64)
                .contains(&v)
                .then_some(v as Label)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("array {name}: label {v} at position {i} is negative or too large"),
                    )
                })
        })
        .collect()
}

/// The class of each one-hot row of `values` (`n` rows of `k`), or `None` unless every row is
/// one 1 among 0s.
fn one_hot(values: &[f64], n: usize, k: usize) -> Option<Vec<Label>> {
    (0..n)
        .map(|i| {
            let row = &values[i * k..(i + 1) * k];
            let ones: Vec<usize> = (0..k).filter(|&j| row[j] == 1.0).collect();
            let zeros = row.iter().filter(|&&v| v == 0.0).count();
            (ones.len() == 1 && zeros == k - 1).then(|| ones[0] as Label)
        })
        .collect()
}

/// Loads a Keras-layout `.npz` file: images, or a feature table when `x_train` is `[N, F]`
/// (read as `table` says, its columns named `f0`, `f1`, ...).
pub fn load_npz(path: &Path, table: &TableOptions) -> Result<Dataset> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(path, format!("not a valid .npz (zip) file: {e}")))?;
    let x_train = read_array(&mut archive, "x_train", path)?;
    if x_train.shape.len() == 2 {
        return load_features(&mut archive, x_train, path, table);
    }
    drop(x_train);
    // One-hot rows name the class count even when a class never occurs in them.
    let mut declared = 0;
    let mut split = |x: &str, y: &str| -> Result<(ImageShape, Split)> {
        let (shape, pixels) = images(&read_array(&mut archive, x, path)?, x, path)?;
        let y_array = read_array(&mut archive, y, path)?;
        if let [_, k] = y_array.shape[..] {
            declared = declared.max(k);
        }
        let labels = labels(&y_array, y, path)?;
        if labels.len() * shape.len() != pixels.len() {
            return Err(bad(
                path,
                format!(
                    "{x} holds {} images but {y} holds {} labels",
                    pixels.len() / shape.len().max(1),
                    labels.len()
                ),
            ));
        }
        Ok((shape, Split::new(pixels, labels, shape.len())))
    };
    let (shape, train) = split("x_train", "y_train")?;
    let (test_shape, test) = split("x_test", "y_test")?;
    if test_shape != shape {
        return Err(bad(
            path,
            format!("x_test images are {test_shape} but x_train images are {shape}"),
        ));
    }
    let classes = train
        .labels
        .iter()
        .max()
        .map_or(0, |&m| m as usize + 1)
        .max(declared);
    Dataset::new(
        path.file_stem()
            .map_or("dataset".into(), |s| s.to_string_lossy().into_owned()),
        path,
        shape,
        classes,
        train,
        test,
    )
}

/// The rows of an archive's `x_train` `[N, F]` (a transfer set's; labels are not read), and F.
pub(super) fn load_feature_rows(path: &Path) -> Result<(Vec<f64>, usize)> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(path, format!("not a valid .npz (zip) file: {e}")))?;
    let x = read_array(&mut archive, "x_train", path)?;
    match x.shape[..] {
        [_, f] if f > 0 => Ok((x.values, f)),
        _ => Err(bad(
            path,
            format!(
                "array x_train has shape {:?}; rows of a table are [N, F]",
                x.shape
            ),
        )),
    }
}

/// The feature table of an archive whose `x_train` is `[N, F]`.
fn load_features(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    x_train: Array,
    path: &Path,
    table: &TableOptions,
) -> Result<Dataset> {
    let part = |archive: &mut zip::ZipArchive<BufReader<File>>,
                x: Array,
                x_name: &str,
                y_name: &str|
     -> Result<(Vec<f64>, Vec<Label>)> {
        let labels = labels(&read_array(archive, y_name, path)?, y_name, path)?;
        match x.shape[..] {
            [n, _] if n == labels.len() => Ok((x.values, labels)),
            [n, _] if n != labels.len() => Err(bad(
                path,
                format!(
                    "{x_name} holds {n} rows but {y_name} holds {} labels",
                    labels.len()
                ),
            )),
            _ => Err(bad(
                path,
                format!(
                    "array {x_name} has shape {:?}; a feature table is [N, F]",
                    x.shape
                ),
            )),
        }
    };
    let width = x_train.shape[1];
    let train = part(archive, x_train, "x_train", "y_train")?;
    let x_test = read_array(archive, "x_test", path)?;
    if x_test.shape.len() != 2 || x_test.shape[1] != width {
        return Err(bad(
            path,
            format!(
                "x_test has shape {:?} but x_train has {width} features per row",
                x_test.shape
            ),
        ));
    }
    let test = part(archive, x_test, "x_test", "y_test")?;
    super::table::load_arrays(path, width, train, test, table)
}
