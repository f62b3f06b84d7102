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
