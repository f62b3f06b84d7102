//! The soft-target cache written in shards, so that teacher inference can be spread over a
//! cluster's array jobs (one process per shard, any scheduler) while the student trains on one
//! machine. Shard I of N holds a contiguous block of the transfer set's rows; its file carries
//! the whole cache key plus its place, so a set is only used when every shard of one N is there
//! and each one checks out.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;

use super::soft_targets::{
    CacheKey, finite_values, read_values, teacher_key, teacher_pass, write_values,
};
use crate::data::Split;
use crate::error::{Error, Result};
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
            Error::config(format!(
                "--shard {s}: expected I/N with 1 <= I <= N (e.g. 2/8 for the second of eight)"
            ))
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

    fn metadata(
        self,
        key: &CacheKey,
        rows: usize,
        classes: usize,
    ) -> std::collections::HashMap<String, String> {
        let mut meta = key.metadata(rows, classes);
        let r = self.rows(rows);
        meta.insert("shard".into(), format!("{}/{}", self.index, self.count));
        meta.insert("shard_rows".into(), format!("{}..{}", r.start, r.end));
        meta
    }
}

/// Computes shard `shard` of `teacher`'s soft targets at `temperature` for `transfer` and
/// writes it atomically into `dir`; returns the file and its rows.
pub fn write_soft_target_shard(
    teacher: &Classifier,
    teacher_dir: &Path,
    transfer: &Split,
    temperature: f32,
    dir: &Path,
    shard: Shard,
    device: &Device,
) -> Result<(PathBuf, Range<usize>)> {
    let key = teacher_key(teacher, teacher_dir, transfer, temperature)?;
    let (rows, classes) = (transfer.len(), teacher.classes());
    let range = shard.rows(rows);
    let values = if range.is_empty() {
        Vec::new()
    } else {
        let part = transfer.subset(&range.clone().collect::<Vec<_>>());
        let images = part.to_device(device).images;
        finite_values(&teacher_pass(teacher, &images, temperature)?, temperature)?
    };
    let path = dir.join(shard.file_name(&key));
    write_values(
        &path,
        shard.metadata(&key, rows, classes),
        &values,
        [range.len(), classes],
    )?;
    Ok((path, range))
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

/// Looks for shards of `key` in `dir`. A complete, consistent set is joined; shards of this
/// key cut two ways, a missing shard, or a shard that fails its checks is an error naming the
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
    let mut foreign = 0;
    let mut by_count: BTreeMap<usize, Vec<Shard>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match parse_shard_name(&name) {
            Some((stem, shard)) if stem == own => {
                by_count.entry(shard.count).or_default().push(shard)
            }
            Some(_) => foreign += 1,
            None => {}
        }
    }
    let Some((&count, found)) = by_count.iter().next() else {
        return Ok(ShardScan::None { foreign });
    };
    if by_count.len() > 1 {
        let sets: Vec<String> = by_count.keys().map(|n| format!("{n} shards")).collect();
        return Err(Error::Mismatch(format!(
            "{} holds shards of these soft targets cut two ways ({}): remove one set",
            dir.display(),
            sets.join(" and ")
        )));
    }
    let missing: Vec<String> = (1..=count)
        .map(|index| Shard { index, count })
        .filter(|s| !found.contains(s))
        .map(|s| s.file_name(key))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Mismatch(format!(
            "{} holds {} of {count} soft-target shards; missing: {} (run `distill soft-targets \
             --shard I/{count}` for each)",
            dir.display(),
            found.len(),
            missing.join(", ")
        )));
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
