//! Helpers shared by the end-to-end tests: run the binary, check clean failures, write tiny
//! datasets.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `distill` binary from the repository root.
pub fn distill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

/// `distill reproduce --preset smoke --out DIR --seed SEED`.
pub fn reproduce_smoke(out: &Path, seed: &str) -> Output {
    distill(&[
        "reproduce",
        "--preset",
        "smoke",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        seed,
    ])
}

/// The standard error of a finished command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure must be a clean, explained exit: non-zero, an `error:` line naming `needle`, no panic.
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

/// Writes one IDX file of unsigned bytes.
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    std::fs::write(path, v).unwrap();
}

/// A tiny 4x4 dataset with `classes` classes, raw IDX files.
pub fn tiny_dataset(dir: &Path, classes: u8, n: u32) {
    let labels: Vec<u8> = (0..n).map(|i| (i % classes as u32) as u8).collect();
    let images: Vec<u8> = (0..n * 16).map(|i| ((i * 37) % 251) as u8).collect();
    write_idx(&dir.join("train-images-idx3-ubyte"), &[n, 4, 4], &images);
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[n], &labels);
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[n, 4, 4], &images);
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[n], &labels);
}

/// The lines of `dir/metrics.jsonl` without their wall-clock times, for comparing runs.
pub fn metrics_without_times(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("elapsed_seconds");
            v
        })
        .collect()
}

/// One `.npy` file's bytes: `data` with `shape`, in the dtype numpy would give `T`.
pub fn npy<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    buf
}

/// Writes an `.npz` (a zip of `NAME.npy` entries, stored uncompressed as numpy's `savez` does).
pub fn write_npz(path: &Path, entries: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The MNIST of this repository as a Keras-layout `.npz` at `path` (uint8 images [N, 28, 28],
/// uint8 labels), made from the committed IDX files.
pub fn mnist_npz(path: &Path) {
    let ds =
        distill::data::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let labels =
        |s: &distill::data::Split| -> Vec<u8> { s.labels.iter().map(|&l| l as u8).collect() };
    let n = |s: &distill::data::Split| s.len() as u64;
    write_npz(
        path,
        &[
            ("x_train", npy(&[n(&ds.train), 28, 28], &ds.train.images)),
            ("y_train", npy(&[n(&ds.train)], &labels(&ds.train))),
            ("x_test", npy(&[n(&ds.test), 28, 28], &ds.test.images)),
            ("y_test", npy(&[n(&ds.test)], &labels(&ds.test))),
        ],
    );
}
