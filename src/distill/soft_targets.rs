//! Teacher soft targets: log-probabilities at T for a transfer set, computed once and cached
//! on disk (safetensors), keyed by the teacher's weights, the transfer set and T. A stale or
//! corrupt cache file is detected and recomputed, never used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use super::shards::ShardScan;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::fsutil::{canonical_safetensors, f32_le, sha256_hex, write_atomic};
use crate::model::{Classifier, Predictor};

/// Metadata key of the SHA-256 of the stored values, checked on every read.
const VALUES_DIGEST: &str = "values_sha256";

/// Metadata that identifies what a cache file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// SHA-256 of the teacher's checkpoint file(s).
    pub teacher: String,
    /// Fingerprint of the transfer set (images and labels).
    pub data: String,
    /// Temperature, as its exact bit pattern written in hex.
    pub temperature_bits: String,
    /// What computed the values and how (kind of teacher, formula version): a change in how
    /// log-probabilities are computed must not reuse values computed the old way.
    pub producer: String,
}

/// Version of the file layout and of the log-probability formulas (2: ensembles in log space).
const FORMAT: &str = "distill-soft-targets-v2";

/// Images per step of a teacher's pass over a transfer set. Networks run in chunks of 2,048
/// rows and ONNX files in chunks of 256 (or of the batch the file fixes), in parallel: a
/// multiple of 2,048 keeps each step's values the bits of one call over every image, and a
/// large one keeps the ONNX chunks parallel and wastes little padding on an odd fixed batch.
const PASS_ROWS: usize = 16384;

/// A progress bar over `total` images labelled `what` (a large teacher over a large transfer
/// set takes minutes); indicatif hides it when stderr is not a terminal.
pub(super) fn images_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:>20} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} images  (eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}

/// `teacher`'s log-probabilities at T for every row of `images`, in steps of [`PASS_ROWS`]
/// with a progress bar.
pub(super) fn teacher_pass(
    teacher: &Classifier,
    images: &Tensor<2>,
    temperature: f32,
) -> Result<Tensor<2>> {
    let [n, _] = images.dims();
    if n <= PASS_ROWS {
        return teacher.log_probs(images, temperature);
    }
    let bar = images_bar(n, "teacher");
    let mut parts = Vec::with_capacity(n.div_ceil(PASS_ROWS));
    for start in (0..n).step_by(PASS_ROWS) {
        let end = (start + PASS_ROWS).min(n);
        parts.push(teacher.log_probs(&images.clone().slice(start..end), temperature)?);
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(Tensor::cat(parts, 0))
}

impl CacheKey {
    /// Key for `teacher` hash, `data` fingerprint, temperature `t` and `producer`.
    pub fn new(teacher: &str, data: &str, t: f32, producer: &str) -> Self {
        CacheKey {
            teacher: teacher.into(),
            data: data.into(),
            temperature_bits: format!("{:08x}", t.to_bits()),
            producer: producer.into(),
        }
    }

    /// File name under a cache directory: a short hash of the whole key.
    pub fn file_name(&self) -> String {
        self.hashed_name("teacher-logprobs", FORMAT)
    }

    /// `PREFIX-HASH.safetensors`, HASH a short hash of the key and the file `format`.
    pub(super) fn hashed_name(&self, prefix: &str, format: &str) -> String {
        let h = sha256_hex(
            format!(
                "{}|{}|{}|{}|{format}",
                self.teacher, self.data, self.temperature_bits, self.producer
            )
            .as_bytes(),
        );
        format!("{prefix}-{}.safetensors", &h[..16])
    }

    /// Metadata a cache file of `rows` x `classes` values under this key carries.
    pub(super) fn metadata(&self, rows: usize, classes: usize) -> HashMap<String, String> {
        HashMap::from([
            ("format".into(), FORMAT.into()),
            ("producer".into(), self.producer.clone()),
            ("teacher_sha256".into(), self.teacher.clone()),
            ("data_sha256".into(), self.data.clone()),
            ("temperature_bits".into(), self.temperature_bits.clone()),
            ("rows".into(), rows.to_string()),
            ("classes".into(), classes.to_string()),
        ])
    }
}

/// What happened when soft targets were requested from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A matching file was found and used.
    Hit,
    /// No file existed; targets were computed and stored.
    Miss,
    /// A file existed but did not match (stale, corrupt, wrong shape); it was recomputed.
    Stale(String),
    /// Assembled from this many shards written by `distill soft-targets --shard`.
    Shards(usize),
    /// Computed and stored; this many shard files in the directory belong to another teacher,
    /// transfer set or temperature and were left alone.
    MissBesideShards(usize),
}

/// Teacher log-probabilities at T for a transfer set, read from `dir` if a matching cache file
/// exists, otherwise assembled from a complete set of shards there (see [`super::shards`]), or
/// else computed with `compute` and stored atomically. A file whose metadata, shape or values
/// do not match is reported as [`CacheOutcome::Stale`] and replaced, never used; an incomplete
/// or mixed set of shards is refused.
pub fn cached_soft_targets(
    dir: &Path,
    key: &CacheKey,
    rows: usize,
    classes: usize,
    device: &Device,
    compute: impl FnOnce() -> Result<Tensor<2>>,
) -> Result<(Tensor<2>, CacheOutcome, PathBuf)> {
    let path = dir.join(key.file_name());
    let as_tensor =
        |values| Tensor::<2>::from_data(TensorData::new(values, [rows, classes]), device);
    let outcome = if path.exists() {
        match read_values(&path, &key.metadata(rows, classes), [rows, classes]) {
            Ok(values) => return Ok((as_tensor(values), CacheOutcome::Hit, path)),
            Err(why) => CacheOutcome::Stale(why),
        }
    } else {
        match super::shards::read_shards(dir, key, rows, classes)? {
            ShardScan::Complete(values, count) => {
                return Ok((
                    as_tensor(values),
                    CacheOutcome::Shards(count),
                    dir.to_path_buf(),
                ));
            }
            ShardScan::None { foreign: 0 } => CacheOutcome::Miss,
            ShardScan::None { foreign } => CacheOutcome::MissBesideShards(foreign),
        }
    };
    let targets = compute()?;
    let temperature = f32::from_bits(u32::from_str_radix(&key.temperature_bits, 16).unwrap_or(0));
    let values = finite_values(&targets, temperature)?;
    write_values(&path, key.metadata(rows, classes), &values, [rows, classes])?;
    Ok((targets, outcome, path))
}

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

/// Teacher log-probabilities at T for `transfer`, from the cache under `cache_dir` when a
/// matching entry exists. The key is the teacher's identity (the SHA-256 of its weights, of all
/// members for an ensemble, of the file and its options for an ONNX model), the transfer
/// set's fingerprint and T.
pub fn teacher_soft_targets(
    teacher: &Classifier,
    teacher_dir: &Path,
    transfer: &Split,
    temperature: f32,
    cache_dir: &Path,
    device: &Device,
) -> Result<(Tensor<2>, CacheOutcome, PathBuf)> {
    let key = teacher_key(teacher, teacher_dir, transfer, temperature)?;
    cached_soft_targets(
        cache_dir,
        &key,
        transfer.len(),
        teacher.classes(),
        device,
        || {
            let dev = transfer.to_device(device);
            teacher_pass(teacher, &dev.images, temperature)
        },
    )
}

/// The cache key of `teacher`'s soft targets at `temperature` for `transfer`, after checking
/// that the teacher takes the transfer images.
pub(super) fn teacher_key(
    teacher: &Classifier,
    teacher_dir: &Path,
    transfer: &Split,
    temperature: f32,
) -> Result<CacheKey> {
    if teacher.inputs() != transfer.pixels {
        return Err(Error::Mismatch(format!(
            "the teacher expects {} inputs but the transfer images have {} pixels",
            teacher.inputs(),
            transfer.pixels
        )));
    }
    Ok(CacheKey::new(
        &teacher.identity(teacher_dir)?,
        &transfer.fingerprint(),
        temperature,
        &teacher.describe(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t2(v: &[f32], shape: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
    }

    #[test]
    fn cache_hits_and_detects_stale_files() {
        let d = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::new("teacherhash", "datahash", 4.0, "mlp:8");
        let make = || Ok(t2(&[-0.1, -2.0, -3.0, -0.5], [2, 2], &d));
        let (_, o, path) = cached_soft_targets(dir.path(), &key, 2, 2, &d, make).unwrap();
        assert_eq!(o, CacheOutcome::Miss);
        let (v, o, _) =
            cached_soft_targets(dir.path(), &key, 2, 2, &d, || panic!("must not recompute"))
                .unwrap();
        assert_eq!(o, CacheOutcome::Hit);
        assert_eq!(
            v.into_data().try_to_vec::<f32>().unwrap(),
            vec![-0.1, -2.0, -3.0, -0.5]
        );
        // Corrupt the file: detected and recomputed, not used.
        std::fs::write(&path, b"junk").unwrap();
        let (_, o, _) = cached_soft_targets(dir.path(), &key, 2, 2, &d, make).unwrap();
        assert!(matches!(o, CacheOutcome::Stale(_)), "{o:?}");
        // A file renamed under another key's name: metadata mismatch.
        let other = CacheKey::new("otherteacher", "datahash", 4.0, "mlp:8");
        std::fs::copy(&path, dir.path().join(other.file_name())).unwrap();
        let (_, o, _) = cached_soft_targets(dir.path(), &other, 2, 2, &d, make).unwrap();
        assert!(
            matches!(o, CacheOutcome::Stale(ref s) if s.contains("differ")),
            "{o:?}"
        );
        assert_ne!(
            key.file_name(),
            CacheKey::new("teacherhash", "datahash", 5.0, "mlp:8").file_name()
        );
        assert_ne!(
            key.file_name(),
            CacheKey::new("teacherhash", "datahash", 4.0, "ensemble of 2 x mlp:8").file_name()
        );
    }

    #[test]
    fn a_flipped_byte_in_the_values_is_caught_and_recomputed() {
        let d = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::new("t", "d", 2.0, "mlp:8");
        let make = || Ok(t2(&[-0.1, -2.0, -3.0, -0.5], [2, 2], &d));
        let (_, _, path) = cached_soft_targets(dir.path(), &key, 2, 2, &d, make).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1; // a byte of the last value, still a finite float
        bytes[last - 2] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (v, o, _) = cached_soft_targets(dir.path(), &key, 2, 2, &d, make).unwrap();
        assert!(
            matches!(o, CacheOutcome::Stale(ref s) if s.contains("SHA-256")),
            "{o:?}"
        );
        assert_eq!(v.into_data().try_to_vec::<f32>().unwrap()[3], -0.5);
    }

    #[test]
    fn non_finite_soft_targets_are_refused_not_cached() {
        let d = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::new("t", "d", 1.0, "mlp:8");
        let make = || Ok(t2(&[0.0, f32::NEG_INFINITY, -0.1, -2.0], [2, 2], &d));
        let e = cached_soft_targets(dir.path(), &key, 2, 2, &d, make).unwrap_err();
        assert!(e.to_string().contains("-inf"), "{e}");
        assert!(!dir.path().join(key.file_name()).exists());
    }
}
