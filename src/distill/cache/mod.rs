//! Teacher soft targets: log-probabilities at T for a transfer set, computed once and cached
//! on disk (safetensors), keyed by the teacher's weights, the transfer set and T. A stale or
//! corrupt cache file is detected and recomputed, never used.
//!
//! Rooms: `key` names a file and says what it holds, `store` owns the file formats (a whole
//! cache, a shard, the views), `pass` runs the teacher,
//! `shards` splits one cache over many processes, `views` caches shifted views of each image.
//! This file serves a whole cache, from one file or from a complete set of shards.

mod key;
mod pass;
mod shards;
mod store;
mod views;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::Split;
use crate::error::Result;
use crate::model::{Classifier, Predictor};
use shards::ShardScan;
use store::{finite_values, read_values, write_values};

pub use key::CacheKey;
pub(super) use key::teacher_key;
pub use pass::release_kept_pass;
pub(super) use pass::teacher_pass;
pub use shards::{SHARD_ALIGN, Shard, ShardWrite, write_soft_target_shard};
pub use views::{
    MAX_VIEWS, StudentInputs, ViewSpec, ViewTargets, ViewsCacheInfo, view_soft_targets,
};

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
/// exists, otherwise assembled from a complete set of shards there (see `shards`), or
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
        match shards::read_shards(dir, key, rows, classes)? {
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
            let memo = format!("{}|{}|{}", key.teacher, key.data, key.producer);
            teacher_pass(teacher, &dev.images, temperature, Some(&memo))
        },
    )
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
