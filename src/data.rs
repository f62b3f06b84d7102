//! Datasets: the IDX file format, train/validation/test splits, batching and augmentation.
//!
//! Images stay as `u8` on the host (a quarter of the memory of `f32`) and are turned into
//! `[0, 1]` floats once, when a split is uploaded to the compute device as one tensor. Batches
//! are then gathered on the device by index, so a training step copies no image data from the
//! host unless augmentation (jitter) has to change the pixels.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// IDX element type code for unsigned bytes, the only one image and label files use.
const IDX_U8: u8 = 0x08;

/// A decoded IDX file: its dimensions and its raw `u8` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions as stored in the header, outermost first.
    pub dims: Vec<usize>,
    /// Row-major elements; `data.len()` equals the product of `dims`.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed). `expected_rank` is 3 for images and 1 for labels.
/// `path` is only used to name the file in errors.
pub fn parse_idx(bytes: &[u8], expected_rank: usize, path: &Path) -> Result<IdxArray> {
    let bad = |reason: String| Error::Idx {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    if bytes.len() < 4 {
        return Err(bad(format!(
            "truncated header: {} bytes, the magic number alone needs 4",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "bad magic number 0x{magic:08x}: IDX files start with two zero bytes"
        )));
    }
    if bytes[2] != IDX_U8 {
        return Err(bad(format!(
            "bad magic number 0x{magic:08x}: element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    if rank != expected_rank {
        let what = if expected_rank == 3 {
            "an image file (magic 0x00000803)"
        } else {
            "a label file (magic 0x00000801)"
        };
        return Err(bad(format!(
            "magic number 0x{magic:08x} says {rank} dimension(s), expected {what}"
        )));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated header: {} bytes, {rank} dimensions need {header}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    if dims.contains(&0) {
        return Err(bad(format!("a dimension is zero: {dims:?}")));
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {expected} data bytes, found {}",
            payload.len()
        )));
    }
    if payload.len() > expected {
        return Err(bad(format!(
            "{} unexpected bytes after the {expected} data bytes that dimensions {dims:?} describe",
            payload.len() - expected
        )));
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}

/// Reads an IDX file, raw or gzip-compressed. A file whose name ends in `.gz` must be gzip;
/// any other file is decompressed if it starts with the gzip magic bytes.
pub fn read_idx(path: &Path, expected_rank: usize) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let is_gz_name = path.extension().is_some_and(|e| e == "gz");
    let has_gz_magic = raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
    let bytes = if has_gz_magic {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Idx {
                path: path.to_path_buf(),
                reason: format!("corrupt or truncated gzip stream: {e}"),
            })?;
        out
    } else if is_gz_name {
        return Err(Error::Idx {
            path: path.to_path_buf(),
            reason: "the name ends in .gz but the contents are not gzip".into(),
        });
    } else {
        raw
    };
    parse_idx(&bytes, expected_rank, path)
}

/// Finds `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::Dataset {
        dir: dir.to_path_buf(),
        reason: format!("missing file: neither {name} nor {name}.gz exists"),
    })
}

/// Labelled images held on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len * pixels` bytes, one image after another, row-major.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Pixels per image (rows * cols).
    pub pixels: usize,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * self.pixels);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.images[i * self.pixels..(i + 1) * self.pixels]);
            labels.push(self.labels[i]);
        }
        Split {
            images,
            labels,
            pixels: self.pixels,
        }
    }

    /// The first `n` examples (all of them if `n` is larger).
    pub fn head(&self, n: usize) -> Split {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Examples per class, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if (l as usize) < classes {
                counts[l as usize] += 1;
            }
        }
        counts
    }

    /// SHA-256 of images and labels: identifies the exact data for caches.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.images.len() + self.labels.len() + 8);
        bytes.extend_from_slice(&(self.pixels as u64).to_le_bytes());
        bytes.extend_from_slice(&self.images);
        bytes.extend_from_slice(&self.labels);
        crate::fsutil::sha256_hex(&bytes)
    }

    /// Uploads the split to `device`: images as `[len, pixels]` floats in `[0, 1]`, labels as ints.
    pub fn to_device(&self, device: &Device) -> DeviceSplit {
        let floats: Vec<f32> = self.images.iter().map(|&p| p as f32 / 255.0).collect();
        let images =
            Tensor::<2>::from_data(TensorData::new(floats, [self.len(), self.pixels]), device);
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [self.len()]), device);
        DeviceSplit {
            images,
            labels,
            len: self.len(),
        }
    }
}

/// A split uploaded to the compute device, batched by index.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `[len, pixels]` floats in `[0, 1]`.
    pub images: Tensor<2>,
    /// `[len]` class indices.
    pub labels: Tensor<1, Int>,
    /// Number of examples.
    pub len: usize,
}

impl DeviceSplit {
    /// The images at `indices` as a `[indices.len(), pixels]` tensor.
    pub fn images_at(&self, indices: &Tensor<1, Int>) -> Tensor<2> {
        self.images.clone().select(0, indices.clone())
    }

    /// The labels at `indices`.
    pub fn labels_at(&self, indices: &Tensor<1, Int>) -> Tensor<1, Int> {
        self.labels.clone().select(0, indices.clone())
    }
}

/// An index tensor for a batch of example positions.
pub fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [indices.len()]), device)
}

/// A dataset in the four-file MNIST layout: training and test splits with their image shape.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name (the data directory's name).
    pub name: String,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes: one more than the largest training label.
    pub classes: usize,
    /// Training examples (validation is split off from these).
    pub train: Split,
    /// Test examples: only ever used for final evaluation.
    pub test: Split,
}

/// File names of the four-file layout (each may also carry a `.gz` suffix).
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

impl Dataset {
    /// Loads and cross-checks the four IDX files in `dir`.
    pub fn load(dir: &Path) -> Result<Dataset> {
        if !dir.is_dir() {
            return Err(Error::Dataset {
                dir: dir.to_path_buf(),
                reason: "the data directory does not exist (pass --data-dir DIR holding the four IDX files)".into(),
            });
        }
        let paths: Vec<PathBuf> = FILES
            .iter()
            .map(|f| find_file(dir, f))
            .collect::<Result<_>>()?;
        let train_images = read_idx(&paths[0], 3)?;
        let train_labels = read_idx(&paths[1], 1)?;
        let test_images = read_idx(&paths[2], 3)?;
        let test_labels = read_idx(&paths[3], 1)?;
        let mismatch = |reason: String| Error::Dataset {
            dir: dir.to_path_buf(),
            reason,
        };
        let (rows, cols) = (train_images.dims[1], train_images.dims[2]);
        if test_images.dims[1..] != train_images.dims[1..] {
            return Err(mismatch(format!(
                "test images are {}x{} but training images are {rows}x{cols}",
                test_images.dims[1], test_images.dims[2]
            )));
        }
        for (imgs, labs, ip, lp) in [
            (&train_images, &train_labels, &paths[0], &paths[1]),
            (&test_images, &test_labels, &paths[2], &paths[3]),
        ] {
            if imgs.dims[0] != labs.dims[0] {
                return Err(mismatch(format!(
                    "{} holds {} images but {} holds {} labels",
                    ip.display(),
                    imgs.dims[0],
                    lp.display(),
                    labs.dims[0]
                )));
            }
        }
        let classes = *train_labels.data.iter().max().unwrap_or(&0) as usize + 1;
        if classes < 2 {
            return Err(mismatch(format!(
                "{} holds a single class; classification needs at least two",
                paths[1].display()
            )));
        }
        if let Some((i, &l)) = test_labels
            .data
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= classes)
        {
            return Err(Error::Idx {
                path: paths[3].clone(),
                reason: format!(
                    "label {l} at position {i} is out of range: the training labels span classes 0..{}",
                    classes - 1
                ),
            });
        }
        let pixels = rows * cols;
        Ok(Dataset {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dataset".into()),
            rows,
            cols,
            classes,
            train: Split {
                images: train_images.data,
                labels: train_labels.data,
                pixels,
            },
            test: Split {
                images: test_images.data,
                labels: test_labels.data,
                pixels,
            },
        })
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Splits the training set into (train, validation) with a seeded shuffle; the validation
    /// split is what choices are made on, never the test set.
    pub fn train_validation(&self, validation: usize, seed: u64) -> Result<(Split, Split)> {
        if validation >= self.train.len() {
            return Err(Error::config(format!(
                "validation size {validation} leaves no training example (training set has {})",
                self.train.len()
            )));
        }
        let mut idx: Vec<usize> = (0..self.train.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed_5911));
        let (val, train) = idx.split_at(validation);
        let mut train = train.to_vec();
        train.sort_unstable();
        let mut val = val.to_vec();
        val.sort_unstable();
        Ok((self.train.subset(&train), self.train.subset(&val)))
    }
}

/// Random translations of up to `max_shift` pixels in each direction, with zero fill: the
/// paper's input jitter. Returns `[indices.len(), rows*cols]` floats in `[0, 1]`.
pub fn jittered_batch(
    split: &Split,
    rows: usize,
    cols: usize,
    indices: &[usize],
    max_shift: usize,
    rng: &mut StdRng,
) -> Vec<f32> {
    let pixels = rows * cols;
    let mut out = vec![0f32; indices.len() * pixels];
    let m = max_shift as i64;
    for (b, &i) in indices.iter().enumerate() {
        let src = &split.images[i * pixels..(i + 1) * pixels];
        let dst = &mut out[b * pixels..(b + 1) * pixels];
        let dy = rng.random_range(-m..=m);
        let dx = rng.random_range(-m..=m);
        for r in 0..rows as i64 {
            let sr = r - dy;
            if sr < 0 || sr >= rows as i64 {
                continue;
            }
            for c in 0..cols as i64 {
                let sc = c - dx;
                if sc < 0 || sc >= cols as i64 {
                    continue;
                }
                dst[(r * cols as i64 + c) as usize] =
                    src[(sr * cols as i64 + sc) as usize] as f32 / 255.0;
            }
        }
    }
    out
}

/// Summary of a dataset for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// Training examples used for fitting (after the validation hold-out and any subsetting).
    pub train_size: usize,
    /// Validation examples held out of the training set.
    pub validation_size: usize,
    /// Test examples evaluated.
    pub test_size: usize,
    /// Image height and width.
    pub image: [usize; 2],
    /// Number of classes.
    pub classes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(dims: &[u32], rank_code: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, IDX_U8, rank_code];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn err(bytes: &[u8], rank: usize) -> String {
        parse_idx(bytes, rank, Path::new("f"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_valid_images_and_labels() {
        let img = idx_bytes(&[2, 2, 3], 3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(&img, 3, Path::new("f")).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        let lab = idx_bytes(&[3], 1, &[0, 9, 4]);
        assert_eq!(
            parse_idx(&lab, 1, Path::new("f")).unwrap().data,
            vec![0, 9, 4]
        );
    }

    #[test]
    fn rejects_malformed_files_with_named_reasons() {
        assert!(err(&[], 3).contains("empty"));
        assert!(err(&[0, 0], 3).contains("truncated header"));
        assert!(err(&[1, 2, 8, 3, 0, 0, 0, 1], 3).contains("bad magic"));
        assert!(
            err(
                &idx_bytes(&[1, 1, 1], 3, &[0])[..]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if i == 2 { 0x0d } else { *b })
                    .collect::<Vec<_>>(),
                3
            )
            .contains("element type")
        );
        assert!(err(&idx_bytes(&[3], 1, &[0, 1, 2]), 3).contains("expected an image file"));
        assert!(err(&idx_bytes(&[2, 2, 2], 3, &[0; 8])[..10], 3).contains("truncated header"));
        assert!(err(&idx_bytes(&[2, 2, 2], 3, &[0; 7]), 3).contains("truncated: dimensions"));
        assert!(err(&idx_bytes(&[2, 2, 2], 3, &[0; 9]), 3).contains("unexpected bytes"));
        assert!(err(&idx_bytes(&[0, 2, 2], 3, &[]), 3).contains("zero"));
    }

    fn write_set(dir: &Path, train_labels: &[u8], test_labels: &[u8], gz: bool) {
        let write = |name: &str, bytes: Vec<u8>| {
            if gz {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&bytes).unwrap();
                std::fs::write(dir.join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        };
        let n = train_labels.len() as u32;
        let m = test_labels.len() as u32;
        write(
            FILES[0],
            idx_bytes(&[n, 2, 3], 3, &vec![7; (n * 6) as usize]),
        );
        write(FILES[1], idx_bytes(&[n], 1, train_labels));
        write(
            FILES[2],
            idx_bytes(&[m, 2, 3], 3, &vec![9; (m * 6) as usize]),
        );
        write(FILES[3], idx_bytes(&[m], 1, test_labels));
    }

    #[test]
    fn loads_any_image_size_and_class_count_raw_or_gzip() {
        for gz in [false, true] {
            let d = tempfile::tempdir().unwrap();
            write_set(d.path(), &[0, 1, 2, 4], &[3, 1], gz);
            let ds = Dataset::load(d.path()).unwrap();
            assert_eq!((ds.rows, ds.cols, ds.classes), (2, 3, 5));
            assert_eq!(ds.train.len(), 4);
            assert_eq!(ds.test.labels, vec![3, 1]);
        }
    }

    #[test]
    fn dataset_level_errors_name_the_problem() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1, 2], &[3], false);
        let e = Dataset::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("label 3") && e.contains("out of range"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::write(d.path().join(FILES[1]), idx_bytes(&[3], 1, &[0, 1, 1])).unwrap();
        let e = Dataset::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::remove_file(d.path().join(FILES[2])).unwrap();
        let e = Dataset::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("missing file") && e.contains("t10k-images"),
            "{e}"
        );

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::write(d.path().join(format!("{}.gz", FILES[3])), b"plain").unwrap();
        std::fs::remove_file(d.path().join(FILES[3])).unwrap();
        let e = Dataset::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("not gzip"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], true);
        let p = d.path().join(format!("{}.gz", FILES[0]));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = Dataset::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");

        let e = Dataset::load(Path::new("/nonexistent/dir"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn jitter_shifts_within_bounds_and_zero_fills() {
        let split = Split {
            images: (0..9).map(|v| v as u8 * 10 + 10).collect(),
            labels: vec![0],
            pixels: 9,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut saw_shift = false;
        for _ in 0..50 {
            let out = jittered_batch(&split, 3, 3, &[0], 1, &mut rng);
            let orig: Vec<f32> = split.images.iter().map(|&p| p as f32 / 255.0).collect();
            saw_shift |= out != orig;
            // Every non-zero output pixel is some input pixel, and the centre always survives a
            // shift of one.
            assert!(out.iter().all(|v| *v == 0.0 || orig.contains(v)));
            assert!(out.contains(&orig[4]));
        }
        assert!(saw_shift);
        assert_eq!(
            jittered_batch(&split, 3, 3, &[0], 0, &mut rng),
            split
                .images
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn validation_split_is_disjoint_and_seeded() {
        let n = 100;
        let ds = Dataset {
            name: "t".into(),
            rows: 1,
            cols: 1,
            classes: 2,
            train: Split {
                images: (0..n as u8).collect(),
                labels: vec![0; n],
                pixels: 1,
            },
            test: Split {
                images: vec![],
                labels: vec![],
                pixels: 1,
            },
        };
        let (t, v) = ds.train_validation(10, 3).unwrap();
        assert_eq!((t.len(), v.len()), (90, 10));
        assert!(v.images.iter().all(|p| !t.images.contains(p)));
        assert_eq!(ds.train_validation(10, 3).unwrap().1, v);
        assert_ne!(ds.train_validation(10, 4).unwrap().1, v);
        assert!(ds.train_validation(100, 3).is_err());
    }
}

/// Which part of the training set a student may learn from (its transfer set), as a user
/// gives it. The teacher is never affected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferSettings {
    /// Keep this fraction of each class (seeded, class-stratified), in (0, 1].
    pub fraction: Option<f64>,
    /// Classes removed entirely.
    pub omit_classes: Vec<usize>,
    /// If non-empty, only these classes are kept.
    pub only_classes: Vec<usize>,
}

/// Checked transfer-set selection for a dataset with a known class count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferSelection {
    settings: TransferSettings,
    kept: Vec<bool>,
}

impl TransferSettings {
    /// Validates the settings against `classes`.
    pub fn check(self, classes: usize) -> Result<TransferSelection> {
        if let Some(f) = self.fraction.filter(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(Error::config(format!(
                "--transfer-fraction must be in (0, 1], got {f}"
            )));
        }
        if !self.omit_classes.is_empty() && !self.only_classes.is_empty() {
            return Err(Error::config(
                "give --omit-classes or --only-classes, not both",
            ));
        }
        for &c in self.omit_classes.iter().chain(&self.only_classes) {
            if c >= classes {
                return Err(Error::config(format!(
                    "class {c} does not exist: the dataset has classes 0..{}",
                    classes - 1
                )));
            }
        }
        let kept: Vec<bool> = (0..classes)
            .map(|c| {
                !self.omit_classes.contains(&c)
                    && (self.only_classes.is_empty() || self.only_classes.contains(&c))
            })
            .collect();
        if !kept.contains(&true) {
            return Err(Error::config(
                "every class is omitted: the transfer set would be empty",
            ));
        }
        Ok(TransferSelection {
            settings: self,
            kept,
        })
    }
}

impl TransferSelection {
    /// The settings this was built from.
    pub fn settings(&self) -> &TransferSettings {
        &self.settings
    }

    /// Classes that the transfer set lacks.
    pub fn missing_classes(&self) -> Vec<usize> {
        (0..self.kept.len()).filter(|&c| !self.kept[c]).collect()
    }

    /// True when the selection keeps everything.
    pub fn is_everything(&self) -> bool {
        self.missing_classes().is_empty() && self.settings.fraction.is_none_or(|f| f >= 1.0)
    }

    /// Positions (into `split`) of the examples kept: for each kept class, a seeded random
    /// `fraction` of its examples (at least one), in their original order.
    pub fn indices(&self, split: &Split, seed: u64) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x07a1_15e7);
        let mut keep = Vec::new();
        for c in 0..self.kept.len() {
            if !self.kept[c] {
                continue;
            }
            let mut of_class: Vec<usize> = (0..split.len())
                .filter(|&i| split.labels[i] as usize == c)
                .collect();
            if let Some(f) = self.settings.fraction {
                of_class.shuffle(&mut rng);
                let n = ((of_class.len() as f64 * f).round() as usize)
                    .max(1)
                    .min(of_class.len());
                of_class.truncate(n);
            }
            keep.extend(of_class);
        }
        keep.sort_unstable();
        keep
    }
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    fn split(n: usize, classes: u8) -> Split {
        Split {
            images: (0..n).map(|i| i as u8).collect(),
            labels: (0..n).map(|i| (i % classes as usize) as u8).collect(),
            pixels: 1,
        }
    }

    #[test]
    fn fraction_is_stratified_seeded_and_within_the_split() {
        let s = split(1000, 10);
        let sel = TransferSettings {
            fraction: Some(0.03),
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let idx = sel.indices(&s, 1);
        assert_eq!(idx.len(), 30);
        assert_eq!(s.subset(&idx).class_counts(10), vec![3; 10]);
        assert_eq!(idx, sel.indices(&s, 1));
        assert_ne!(idx, sel.indices(&s, 2));
        assert!(idx.iter().all(|&i| i < s.len()));
    }

    #[test]
    fn omitted_classes_are_absent_and_only_classes_alone_remain() {
        let s = split(200, 10);
        let omit = TransferSettings {
            omit_classes: vec![3],
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let sub = s.subset(&omit.indices(&s, 1));
        assert_eq!(sub.class_counts(10)[3], 0);
        assert_eq!(sub.len(), 180);
        assert_eq!(omit.missing_classes(), vec![3]);
        let only = TransferSettings {
            only_classes: vec![7, 8],
            ..Default::default()
        }
        .check(10)
        .unwrap();
        let sub = s.subset(&only.indices(&s, 1));
        assert!(sub.labels.iter().all(|&l| l == 7 || l == 8));
        assert_eq!(only.missing_classes().len(), 8);
    }

    #[test]
    fn bad_selections_are_refused() {
        for f in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(
                TransferSettings {
                    fraction: Some(f),
                    ..Default::default()
                }
                .check(10)
                .is_err(),
                "{f}"
            );
        }
        let e = TransferSettings {
            omit_classes: vec![12],
            ..Default::default()
        }
        .check(10)
        .unwrap_err();
        assert!(e.to_string().contains("does not exist"));
        let e = TransferSettings {
            omit_classes: (0..10).collect(),
            ..Default::default()
        }
        .check(10)
        .unwrap_err();
        assert!(e.to_string().contains("every class"));
    }
}
