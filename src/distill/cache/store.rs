//! The soft-target file formats, read and written here only: safetensors of f32
//! log-probabilities (a whole cache or one shard), or of float16 log-probabilities with the
//! shifts of each view, whose metadata carries the cache key and the values' SHA-256; written
//! atomically, and refused on read unless metadata, shape, digest and values all check out.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Tensor;

use half::f16;

use crate::data::Shift;
use crate::error::{Error, Result};
use crate::fsutil::{canonical_safetensors, f32_le, sha256_hex, write_atomic};

/// Metadata key of the SHA-256 of the stored values, checked on every read.
const VALUES_DIGEST: &str = "values_sha256";

/// The values of `targets`, refused if any is not finite (nothing is cached then).
pub(super) fn finite_values(targets: &Tensor<2>, temperature: f32) -> Result<Vec<f32>> {
    let values: Vec<f32> = targets
        .to_data()
        .try_to_vec()
        .map_err(|e| Error::NonFinite(format!("teacher outputs: {e:?}")))?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "the teacher's soft targets at T = {temperature} (a log-probability is {v}): the \
             teacher's outputs overflow or are not finite; nothing was cached"
        )));
    }
    Ok(values)
}

/// Writes `values` (`shape`) with `meta` and their SHA-256, atomically.
pub(super) fn write_values(
    path: &Path,
    mut meta: HashMap<String, String>,
    values: &[f32],
    shape: [usize; 2],
) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    meta.insert(VALUES_DIGEST.into(), sha256_hex(&bytes));
    let format_error = |e: safetensors::SafeTensorError| Error::Format {
        what: format!("soft-target cache {}", path.display()),
        reason: e.to_string(),
    };
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .map_err(format_error)?;
    let out = safetensors::serialize([("log_probs", view)], Some(meta))
        .map(canonical_safetensors)
        .map_err(format_error)?;
    write_atomic(path, &out)
}

/// The values of a cache file, if its metadata is exactly `expected` and its tensor has
/// `shape`, matches its recorded SHA-256 and is finite; otherwise why not.
pub(super) fn read_values(
    path: &Path,
    expected: &HashMap<String, String>,
    shape: [usize; 2],
) -> std::result::Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format!("corrupt: {e}"))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| format!("corrupt: {e}"))?;
    let mut meta = meta.metadata().clone().unwrap_or_default();
    let digest = meta.remove(VALUES_DIGEST);
    if &meta != expected {
        return Err(differing(&meta, expected));
    }
    let t = st
        .tensor("log_probs")
        .map_err(|_| "no log_probs tensor".to_string())?;
    if t.shape() != shape || t.dtype() != safetensors::Dtype::F32 {
        return Err(format!("tensor shape {:?} is not {shape:?}", t.shape()));
    }
    if digest.as_deref() != Some(sha256_hex(t.data()).as_str()) {
        return Err("its values do not match their recorded SHA-256 (the file was altered)".into());
    }
    let v = f32_le(t.data());
    if v.iter().any(|x| !x.is_finite()) {
        return Err("holds NaN or infinite values".into());
    }
    Ok(v)
}

/// "its teacher differs from this run's": what a cache file's metadata says it holds that this
/// run does not want.
fn differing(found: &HashMap<String, String>, expected: &HashMap<String, String>) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("teacher_sha256", "teacher"),
        ("producer", "kind of teacher"),
        ("data_sha256", "transfer set"),
        ("temperature_bits", "temperature"),
        ("format", "format"),
        ("rows", "shape"),
        ("classes", "shape"),
        ("shard", "place among the shards"),
        ("shard_rows", "place among the shards"),
    ];
    let mut names: Vec<&str> = WORDS
        .iter()
        .filter(|(k, _)| found.get(*k) != expected.get(*k))
        .map(|(_, w)| *w)
        .collect();
    names.dedup();
    if names.is_empty() {
        names.push("metadata");
    }
    let verb = if names.len() == 1 {
        "differs"
    } else {
        "differ"
    };
    format!("its {} {verb} from this run's", names.join(", "))
}

/// The string metadata of a safetensors file, read from its header alone (a shard of another
/// set may be large, and only its origin is wanted); `None` if it is not one.
pub(super) fn header_metadata(path: &Path) -> Option<HashMap<String, String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 1 << 20 {
        return None;
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let meta = v.get("__metadata__")?.as_object()?;
    Some(
        meta.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    )
}

/// Version of the views file layout.
pub(super) const VIEWS_FORMAT: &str = "distill-soft-target-views-v1";

/// Float16 log-probabilities back to float32, each row renormalized (rounding leaves its
/// probabilities summing to 1 only approximately).
pub(super) fn decode(stored: &[f16], classes: usize) -> Vec<f32> {
    let mut out: Vec<f32> = stored.iter().map(|v| v.to_f32()).collect();
    for row in out.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        row.iter_mut().for_each(|v| *v -= lse);
    }
    out
}

/// A views file's metadata: its key's, under the views format.
pub(super) fn views_metadata(mut meta: HashMap<String, String>) -> HashMap<String, String> {
    meta.insert("format".into(), VIEWS_FORMAT.into());
    meta
}

/// Metadata entries that describe the stored values rather than identify them.
const MAX_ERROR: &str = "max_prob_error";
const MEAN_KL: &str = "mean_kl";

fn shift_bytes(shifts: &[Shift]) -> Vec<u8> {
    shifts
        .iter()
        .flat_map(|s| [s.dy as u8, s.dx as u8])
        .collect()
}

/// Writes a views file: float16 log-probabilities, the shifts that made each view, and the
/// quantization error figures, atomically.
pub(super) fn write_views(
    path: &Path,
    mut meta: HashMap<String, String>,
    stored: &[f16],
    shifts: &[Shift],
    classes: usize,
    (max_err, kl): (f64, f64),
) -> Result<()> {
    let values: Vec<u8> = stored.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shift_data = shift_bytes(shifts);
    meta.insert(VALUES_DIGEST.into(), sha256_hex(&values));
    meta.insert(MAX_ERROR.into(), format!("{max_err:e}"));
    meta.insert(MEAN_KL.into(), format!("{kl:e}"));
    let format_error = |e: safetensors::SafeTensorError| Error::Format {
        what: format!("soft-target views cache {}", path.display()),
        reason: e.to_string(),
    };
    use safetensors::{Dtype, tensor::TensorView};
    let rows = shifts.len();
    let lp = TensorView::new(Dtype::F16, vec![rows, classes], &values).map_err(format_error)?;
    let sh = TensorView::new(Dtype::I8, vec![rows, 2], &shift_data).map_err(format_error)?;
    let out = safetensors::serialize([("log_probs", lp), ("shifts", sh)], Some(meta))
        .map(canonical_safetensors)
        .map_err(format_error)?;
    write_atomic(path, &out)
}

/// The decoded values and stored error figures of a views file, if it is exactly what
/// `expected` and `shifts` describe; otherwise why not.
pub(super) fn read_views(
    path: &Path,
    expected: &HashMap<String, String>,
    shifts: &[Shift],
    classes: usize,
) -> std::result::Result<(Vec<f32>, (f64, f64)), String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("corrupt: {e}"))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("corrupt: {e}"))?;
    let mut meta = header.metadata().clone().unwrap_or_default();
    let digest = meta.remove(VALUES_DIGEST);
    let figure = |m: &mut HashMap<String, String>, k: &str| {
        m.remove(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no {k} in its metadata"))
    };
    let errors = (figure(&mut meta, MAX_ERROR)?, figure(&mut meta, MEAN_KL)?);
    if &meta != expected {
        return Err(
            "its teacher, data, views, temperature, producer or format differ from this run's"
                .into(),
        );
    }
    let rows = shifts.len();
    let lp = st.tensor("log_probs").map_err(|_| "no log_probs tensor")?;
    let sh = st.tensor("shifts").map_err(|_| "no shifts tensor")?;
    if lp.dtype() != Dtype::F16 || lp.shape() != [rows, classes] {
        return Err(format!("log_probs is not float16 [{rows}, {classes}]"));
    }
    if sh.dtype() != Dtype::I8 || sh.data() != shift_bytes(shifts).as_slice() {
        return Err("its shifts are not the ones this run's seed draws".into());
    }
    if digest.as_deref() != Some(sha256_hex(lp.data()).as_str()) {
        return Err("its values do not match their recorded SHA-256 (the file was altered)".into());
    }
    let stored: Vec<f16> = lp
        .data()
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]))
        .collect();
    if stored.iter().any(|v| !v.is_finite()) {
        return Err("holds NaN or infinite values".into());
    }
    Ok((decode(&stored, classes), errors))
}
