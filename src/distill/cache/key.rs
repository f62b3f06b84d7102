//! What a cache file holds, as its name and metadata say: the teacher's identity, the transfer
//! set's fingerprint, the temperature and what computed the values.

use std::collections::HashMap;
use std::path::Path;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::fsutil::sha256_hex;
use crate::model::{Classifier, Predictor};

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

/// The cache key of `teacher`'s soft targets at `temperature` for `transfer`, after checking
/// that the teacher takes the transfer images.
pub(crate) fn teacher_key(
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
