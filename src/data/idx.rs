//! The IDX format of MNIST and friends: one file per array, big-endian dimensions after a
//! magic number, unsigned bytes after that; a dataset is four such files (training and test
//! images and labels), each raw or gzip-compressed.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, ImageShape};
use super::split::Split;
use crate::error::{Error, Result, Setting};

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
        gunzip_bounded(&raw, expected_rank, path)?
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

/// Deflate cannot compress by more than about 1,032 to 1: a header that declares more data
/// than that times the compressed size is lying.
const MAX_DEFLATE_RATIO: usize = 1100;

/// Decompresses an IDX file's header, then at most the payload it declares plus one byte (so
/// that `parse_idx` can name an over-long file). A gzip bomb, or a header claiming more data
/// than the compressed file could hold, costs no more memory than the claim allows.
fn gunzip_bounded(raw: &[u8], expected_rank: usize, path: &Path) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| Error::Idx {
        path: path.to_path_buf(),
        reason: format!("corrupt or truncated gzip stream: {e}"),
    };
    let mut dec = flate2::read::GzDecoder::new(raw);
    let header = 4 + 4 * expected_rank;
    let mut out = Vec::with_capacity(header);
    (&mut dec)
        .take(header as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    // A short or foreign header: `parse_idx` says what is wrong with it.
    if out.len() < header || out[3] as usize != expected_rank {
        return Ok(out);
    }
    let declared = out[4..]
        .chunks_exact(4)
        .try_fold(1usize, |acc, d| {
            acc.checked_mul(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        })
        .filter(|&n| n <= raw.len().saturating_mul(MAX_DEFLATE_RATIO))
        .ok_or_else(|| Error::Idx {
            path: path.to_path_buf(),
            reason: format!(
                "the header declares dimensions {:?}, more data than a {}-byte gzip file can hold",
                out[4..]
                    .chunks_exact(4)
                    .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
                    .collect::<Vec<_>>(),
                raw.len()
            ),
        })?;
    dec.take(declared as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    Ok(out)
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

/// File names of the four-file layout (each may also carry a `.gz` suffix).
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// True when `dir` holds the training images of the four-file layout (raw or gzip).
pub fn is_idx_dir(dir: &Path) -> bool {
    dir.is_dir() && find_file(dir, FILES[0]).is_ok()
}

/// Loads and cross-checks the four IDX files in `dir`.
pub fn load_dir(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::Dataset {
            dir: dir.to_path_buf(),
            reason: format!(
                "the data directory does not exist (pass {} DIR holding the four IDX files)",
                Setting::DataDir
            ),
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
    let classes = classes_of(
        dir,
        &paths,
        [&train_images, &train_labels, &test_images, &test_labels],
    )?;
    let (rows, cols) = (train_images.dims[1], train_images.dims[2]);
    let shape = ImageShape {
        channels: 1,
        height: rows,
        width: cols,
    };
    let widen = |v: Vec<u8>| v.into_iter().map(u32::from).collect::<Vec<_>>();
    Dataset::new(
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into()),
        dir,
        shape,
        classes,
        Split::new(train_images.data, widen(train_labels.data), shape.len()),
        Split::new(test_images.data, widen(test_labels.data), shape.len()),
    )
}

/// The number of classes of the four IDX files, after checking that they fit together: the
/// same image size, one label per image, at least two classes, and no test label outside them.
fn classes_of(dir: &Path, paths: &[PathBuf], files: [&IdxArray; 4]) -> Result<usize> {
    let mismatch = |reason: String| Error::Dataset {
        dir: dir.to_path_buf(),
        reason,
    };
    let [train_images, train_labels, test_images, test_labels] = files;
    let (rows, cols) = (train_images.dims[1], train_images.dims[2]);
    if test_images.dims[1..] != train_images.dims[1..] {
        return Err(mismatch(format!(
            "test images are {}x{} but training images are {rows}x{cols}",
            test_images.dims[1], test_images.dims[2]
        )));
    }
    for (imgs, labs, ip, lp) in [
        (train_images, train_labels, &paths[0], &paths[1]),
        (test_images, test_labels, &paths[2], &paths[3]),
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
    Ok(classes)
}

/// The MNIST directory used when none is given: `./data/mnist` if present, else the copy in
/// this source tree.
pub fn mnist_dir() -> PathBuf {
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
    }
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
            let ds = load_dir(d.path()).unwrap();
            assert_eq!((ds.shape.height, ds.shape.width, ds.classes), (2, 3, 5));
            assert_eq!(ds.train.len(), 4);
            assert_eq!(ds.test.labels, vec![3, 1]);
        }
    }

    #[test]
    fn dataset_level_errors_name_the_problem() {
        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1, 2], &[3], false);
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("label 3") && e.contains("out of range"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::write(d.path().join(FILES[1]), idx_bytes(&[3], 1, &[0, 1, 1])).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::remove_file(d.path().join(FILES[2])).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("missing file") && e.contains("t10k-images"),
            "{e}"
        );

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], false);
        std::fs::write(d.path().join(format!("{}.gz", FILES[3])), b"plain").unwrap();
        std::fs::remove_file(d.path().join(FILES[3])).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("not gzip"), "{e}");

        let d = tempfile::tempdir().unwrap();
        write_set(d.path(), &[0, 1], &[1], true);
        let p = d.path().join(format!("{}.gz", FILES[0]));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bombs_and_lying_headers_fail_fast() {
        let d = tempfile::tempdir().unwrap();
        // A valid header for 1 x 2 x 2 images followed by 64 MiB of zeros: decompression stops
        // one byte past the declared 4, and the file is named as too long.
        let mut bomb = idx_bytes(&[1, 2, 2], 3, &[0; 4]);
        bomb.resize(64 << 20, 0);
        let p = d.path().join("bomb.gz");
        std::fs::write(&p, gzip(&bomb)).unwrap();
        let e = read_idx(&p, 3).unwrap_err().to_string();
        // Bounded: one byte past the declared payload was read, not the 64 MiB behind it.
        assert!(
            e.contains(" 1 unexpected bytes after the 4 data bytes") && e.contains("bomb.gz"),
            "{e}"
        );
        // A header claiming 2^32 - 1 images of 28 x 28 in a file of a few dozen bytes.
        let liar = gzip(&idx_bytes(&[u32::MAX, 28, 28], 3, &[0; 16]));
        let p = d.path().join("liar.gz");
        std::fs::write(&p, &liar).unwrap();
        let e = read_idx(&p, 3).unwrap_err().to_string();
        assert!(e.contains("more data than") && e.contains("liar.gz"), "{e}");
        // A truthful gzip file still reads, and its CRC is still checked.
        let good = gzip(&idx_bytes(&[2], 1, &[3, 4]));
        let p = d.path().join("good.gz");
        std::fs::write(&p, &good).unwrap();
        assert_eq!(read_idx(&p, 1).unwrap().data, vec![3, 4]);
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        std::fs::write(&p, &bad_crc).unwrap();
        assert!(read_idx(&p, 1).unwrap_err().to_string().contains("gzip"));
    }
}
