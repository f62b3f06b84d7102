//! The soft-target file format, read and written here only: safetensors of f32
//! log-probabilities whose metadata carries the cache key and the values' SHA-256, written
//! atomically, and refused on read unless metadata, shape, digest and values all check out.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Tensor;

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
