//! The soft-target cache written in shards, so that teacher inference can be spread over a
//! cluster's array jobs (one process per shard, any scheduler) while the student trains on one
//! machine. Shard I of N holds a contiguous block of the transfer set's rows; its file carries
//! the whole cache key plus its place, so a set is only used when every shard of one N is there
//! and each one checks out.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;

use super::key::{CacheKey, teacher_key};
use super::pass::teacher_pass;
use super::store::{finite_values, header_metadata, read_values, write_values};
use crate::data::Split;
use crate::error::{Error, Result, Setting};
use crate::fsutil::{FileLock, sha256_hex};
use crate::model::{Classifier, Predictor};

/// Shard boundaries fall on multiples of this many rows: a multiple of every chunk size the
/// teachers compute in (MLP 2,048, CNN 512, ONNX 256), so that a shard's rows pass through the
/// same chunks as in one unsharded pass and come out bit for bit the same.
pub const SHARD_ALIGN: usize = 2048;

/// Which part of the transfer set one process computes: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Position, from 1 to `count`.
    pub index: usize,
    /// How many shards the set is cut into.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::setting(
                Setting::Shard,
                format!("{s}: expected I/N with 1 <= I <= N (e.g. 2/8 for the second of eight)"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The rows of a `rows`-row transfer set this shard covers (empty for a trailing shard of a
    /// set too small to need it).
    pub fn rows(self, rows: usize) -> Range<usize> {
        let per = rows.div_ceil(self.count).div_ceil(SHARD_ALIGN) * SHARD_ALIGN;
        let start = ((self.index - 1) * per).min(rows);
        start..(start + per).min(rows)
    }

    /// The shard's file name under a cache directory.
    pub fn file_name(self, key: &CacheKey) -> String {
        let stem = key.file_name();
        let stem = stem.trim_end_matches(".safetensors");
        format!("{stem}-shard-{}-of-{}.safetensors", self.index, self.count)
    }

    fn metadata(self, key: &CacheKey, rows: usize, classes: usize) -> HashMap<String, String> {
        let mut meta = key.metadata(rows, classes);
        let r = self.rows(rows);
        meta.insert("shard".into(), format!("{}/{}", self.index, self.count));
        meta.insert("shard_rows".into(), format!("{}..{}", r.start, r.end));
        meta
    }
}

/// What writing a shard did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardWrite {
    /// No finished shard was there: it was computed and written.
    Computed,
    /// A finished shard was there and checked out against its recorded SHA-256 (given):
    /// nothing was computed or written.
    Verified(String),
    /// A shard was there but did not check out (why): it was computed again and replaced.
    Repaired(String),
}

/// Computes shard `shard` of `teacher`'s soft targets at `temperature` for `transfer` and
/// writes it atomically into `dir`; returns the file, its rows and what was done.
///
/// Safe on a directory shared by many processes and machines: one process at a time holds the
/// shard's lock (a second one given the same shard is refused while the first runs, and a
/// killed one's lock dies with it); a finished shard is verified, not recomputed, so a rerun of
/// a whole array only redoes the shards that are missing or broken.
pub fn write_soft_target_shard(
    teacher: &Classifier,
    teacher_dir: &Path,
    transfer: &Split,
    temperature: f32,
    dir: &Path,
    shard: Shard,
    device: &Device,
) -> Result<(PathBuf, Range<usize>, ShardWrite)> {
    let key = teacher_key(teacher, teacher_dir, transfer, temperature)?;
    let (rows, classes) = (transfer.len(), teacher.classes());
    let range = shard.rows(rows);
    let name = shard.file_name(&key);
    let path = dir.join(&name);
    let meta = shard.metadata(&key, rows, classes);
    let shape = [range.len(), classes];
    let _lock = FileLock::try_acquire(&dir.join(format!(".{name}.lock")), &path)?;
    remove_temporaries(dir, &name);
    let broken = if path.exists() {
        match read_values(&path, &meta, shape) {
            Ok(values) => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                return Ok((path, range, ShardWrite::Verified(sha256_hex(&bytes))));
            }
            Err(why) => Some(why),
        }
    } else {
        None
    };
    let values = if range.is_empty() {
        Vec::new()
    } else {
        let part = transfer.subset(&range.clone().collect::<Vec<_>>());
        let images = part.to_device(device).images;
        finite_values(
            &teacher_pass(teacher, &images, temperature, None)?,
            temperature,
        )?
    };
    write_values(&path, meta, &values, shape)?;
    let done = broken.map_or(ShardWrite::Computed, ShardWrite::Repaired);
    Ok((path, range, done))
}

/// Removes the temporary files a killed writer of shard file `name` left in `dir` (called with
/// the shard's lock held, so no live writer owns them).
fn remove_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp");
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What a cache directory holds in shards for one key.
#[derive(Debug)]
pub(super) enum ShardScan {
    /// Every shard of one set, checked and joined: the values and the number of shards.
    Complete(Vec<f32>, usize),
    /// No shard of this key; `foreign` shard files of other keys were seen.
    None {
        /// Shard files of other teachers, transfer sets or temperatures.
        foreign: usize,
    },
}

/// Parses `…-shard-I-of-N.safetensors` into the key stem and the shard.
fn parse_shard_name(name: &str) -> Option<(&str, Shard)> {
    let rest = name.strip_suffix(".safetensors")?;
    let (stem, place) = rest.rsplit_once("-shard-")?;
    let (i, n) = place.split_once("-of-")?;
    let shard: Shard = format!("{i}/{n}").parse().ok()?;
    stem.starts_with("teacher-logprobs-")
        .then_some((stem, shard))
}

/// Looks for shards of `key` in `dir`. A complete, consistent set is joined. Shards of this
/// key cut two ways, a missing shard (named by its index), a shard that fails its checks, or
/// shards of another teacher for this transfer set and temperature are errors naming the
/// files, since a user who made shards means them to be used.
pub(super) fn read_shards(
    dir: &Path,
    key: &CacheKey,
    rows: usize,
    classes: usize,
) -> Result<ShardScan> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(ShardScan::None { foreign: 0 });
    };
    let own = key.file_name();
    let own = own.trim_end_matches(".safetensors");
    let mut foreign = Vec::new();
    let mut by_count: BTreeMap<usize, Vec<Shard>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match parse_shard_name(&name) {
            Some((stem, shard)) if stem == own => {
                by_count.entry(shard.count).or_default().push(shard)
            }
            Some(_) => foreign.push(e.path()),
            None => {}
        }
    }
    foreign.sort();
    let other_teacher: Vec<&PathBuf> = foreign
        .iter()
        .filter(|p| header_metadata(p).is_some_and(|m| of_another_teacher(&m, key)))
        .collect();
    let Some((&count, found)) = by_count.iter().next() else {
        return match other_teacher.first() {
            Some(first) => Err(another_teacher(first, key, other_teacher.len())),
            None => Ok(ShardScan::None {
                foreign: foreign.len(),
            }),
        };
    };
    if by_count.len() > 1 {
        let sets: Vec<String> = by_count.keys().map(|n| format!("{n} shards")).collect();
        return Err(Error::Mismatch(format!(
            "{} holds shards of these soft targets cut two ways ({}): remove one set",
            dir.display(),
            sets.join(" and ")
        )));
    }
    let missing: Vec<Shard> = (1..=count)
        .map(|index| Shard { index, count })
        .filter(|s| !found.contains(s))
        .collect();
    if !missing.is_empty() {
        let mut why = incomplete(dir, rows, found.len(), &missing);
        if let Some(first) = other_teacher.first() {
            why.push_str(&format!(
                "; {} there is of another teacher and was not used",
                first.display()
            ));
        }
        return Err(Error::Mismatch(why));
    }
    let mut values = Vec::with_capacity(rows * classes);
    for index in 1..=count {
        let shard = Shard { index, count };
        let path = dir.join(shard.file_name(key));
        let part = read_values(
            &path,
            &shard.metadata(key, rows, classes),
            [shard.rows(rows).len(), classes],
        )
        .map_err(|why| Error::Mismatch(format!("soft-target shard {}: {why}", path.display())))?;
        values.extend(part);
    }
    Ok(ShardScan::Complete(values, count))
}

/// "DIR holds 1 of 3 …: shards 2 and 3 of 3 (rows …) are missing".
fn incomplete(dir: &Path, rows: usize, found: usize, missing: &[Shard]) -> String {
    let count = missing[0].count;
    let indices: Vec<String> = missing.iter().map(|s| s.index.to_string()).collect();
    let spans: Vec<String> = missing
        .iter()
        .map(|s| s.rows(rows))
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    let (what, verb) = match indices.len() {
        1 => (format!("shard {}", indices[0]), "is"),
        _ => (format!("shards {}", and_list(&indices)), "are"),
    };
    format!(
        "{} holds {found} of {count} soft-target shards of this teacher, transfer set and \
         temperature: {what} of {count} (rows {}) {verb} missing; compute {} with the same \
         teacher, data and temperature",
        dir.display(),
        and_list(&spans),
        if indices.len() == 1 { "it" } else { "them" },
    )
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The refusal of a shard set made by another teacher for this transfer set and temperature.
fn another_teacher(path: &Path, key: &CacheKey, count: usize) -> Error {
    let theirs = header_metadata(path)
        .and_then(|m| m.get("teacher_sha256").cloned())
        .unwrap_or_default();
    let short = |h: &str| h.chars().take(12).collect::<String>();
    let more = match count {
        1 => String::new(),
        n => format!(" (and {} more of its kind)", n - 1),
    };
    Error::Mismatch(format!(
        "{}{more} is a soft-target shard of another teacher (its teacher's SHA-256 begins {}, \
         this teacher's {}) for the same transfer set and temperature: it was not used; compute \
         this teacher's shards or use another cache directory",
        path.display(),
        short(&theirs),
        short(&key.teacher),
    ))
}

/// Whether a cache file's metadata says it holds soft targets of this key's transfer set and
/// temperature from another teacher (other weights, or another kind of teacher).
fn of_another_teacher(meta: &HashMap<String, String>, key: &CacheKey) -> bool {
    let is = |k: &str, v: &String| meta.get(k) == Some(v);
    is("data_sha256", &key.data)
        && is("temperature_bits", &key.temperature_bits)
        && !(is("teacher_sha256", &key.teacher) && is("producer", &key.producer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_row_once_on_aligned_boundaries() {
        for (rows, count) in [(55_000, 3), (4_000, 3), (1, 1), (2048 * 5, 5), (10, 4)] {
            let mut next = 0;
            for index in 1..=count {
                let r = Shard { index, count }.rows(rows);
                assert_eq!(r.start, next, "{rows} rows, shard {index}/{count}");
                assert!(r.start.is_multiple_of(SHARD_ALIGN) || r.is_empty());
                next = r.end;
            }
            assert_eq!(next, rows);
        }
    }

    #[test]
    fn shard_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        let key = CacheKey::new("t", "d", 4.0, "mlp:8");
        let s = Shard { index: 2, count: 3 };
        assert_eq!(parse_shard_name(&s.file_name(&key)).unwrap().1, s);
        assert!(parse_shard_name(&key.file_name()).is_none());
    }
}
