//! Fuzzed readers: every reader of a file a user can hand to `distill` is fed thousands of
//! mutated and random inputs and must answer with an error or a value, never a panic, and
//! without allocating beyond what the input can justify.
//!
//! Each reader runs a fixed number of seeded cases here (seconds in all). The long run sets a
//! time budget per reader instead:
//!
//!     DISTILL_FUZZ_SECONDS=600 cargo test --release --test it fuzz:: -- --test-threads 1
//!
//! Readers: IDX (raw and gzip), checkpoints, the soft-target cache, `config.toml`, the
//! ensemble manifest, `report.json`, `.npz` datasets, image-folder images and tree-ensemble
//! ONNX teachers (structured mutations of their tree arrays are in `trees.rs`).
//!
//! `DISTILL_FUZZ_SEED` changes the seed. A crash found becomes a regression test below.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use distill::data::idx::{parse_idx, read_idx};
use distill::distill::{CacheKey, cached_soft_targets};
use distill::experiment::ReproduceParams;
use distill::experiment::summary::summarize;
use distill::model::{
    Classifier, Dropout, ModelConfig, Network, OnnxModel, OnnxOptions, TreeEnsemble,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Applies 1 to 4 random mutations: bit flips, interesting bytes, truncation, insertion,
/// duplication, and large integers written over a field.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len().max(1);
        match rng.random_range(0..7) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = [0, 0xff, 0x7f, 0x80, b'{', b'"', b'9'][rng.random_range(0..7)];
            }
            2 => v.truncate(rng.random_range(0..len)),
            3 => {
                let i = rng.random_range(0..=v.len());
                let n = rng.random_range(1..16);
                let extra: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                v.splice(i..i, extra);
            }
            4 if v.len() > 2 => {
                let a = rng.random_range(0..v.len() - 1);
                let b = rng.random_range(a + 1..v.len().min(a + 64) + 1);
                let chunk = v[a..b].to_vec();
                let at = rng.random_range(0..=v.len());
                v.splice(at..at, chunk);
            }
            5 if v.len() >= 8 => {
                let i = rng.random_range(0..v.len() - 7);
                let big: u64 =
                    [u64::MAX, u32::MAX as u64, 1 << 31, 1 << 40, 0][rng.random_range(0..5)];
                v[i..i + 8].copy_from_slice(&big.to_le_bytes());
            }
            _ => {
                let n = rng.random_range(0..64);
                v = (0..n).map(|_| rng.random()).collect();
            }
        }
    }
    v
}

/// Feeds `cases` mutations of `seeds` to `read` (or runs for `DISTILL_FUZZ_SECONDS`), and
/// fails with the input that panicked.
fn fuzz(name: &str, seeds: &[Vec<u8>], cases: usize, mut read: impl FnMut(&[u8])) {
    let budget = std::env::var("DISTILL_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let seed = std::env::var("DISTILL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed ^ name.len() as u64);
    let start = Instant::now();
    let mut n = 0usize;
    while budget.map_or(n < cases, |b| start.elapsed() < b) {
        let base = &seeds[rng.random_range(0..seeds.len())];
        let input = if n.is_multiple_of(50) {
            base.clone()
        } else {
            mutate(base, &mut rng)
        };
        if catch_unwind(AssertUnwindSafe(|| read(&input))).is_err() {
            let dump = std::env::temp_dir().join(format!("distill-fuzz-{name}-{n}.bin"));
            std::fs::write(&dump, &input).unwrap();
            panic!(
                "{name}: case {n} panicked; input saved to {}",
                dump.display()
            );
        }
        n += 1;
    }
    eprintln!(
        "{name}: {n} cases in {:.1} s, no panic",
        start.elapsed().as_secs_f64()
    );
}

fn idx_file(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn network() -> Network {
    let spec = "mlp:5,4".parse().unwrap();
    let shape = distill::data::ImageShape::gray(3, 3);
    let cfg = ModelConfig::new(&spec, shape, 3, Dropout::NONE).unwrap();
    Network::init(cfg, &Device::flex())
}

#[test]
fn idx_reader_raw() {
    let seeds = vec![
        idx_file(&[3, 2, 2], &[1; 12]),
        idx_file(&[5], &[0, 1, 2, 3, 4]),
        idx_file(&[1, 28, 28], &[7; 784]),
    ];
    fuzz("idx", &seeds, 20_000, |b| {
        let _ = parse_idx(b, 3, Path::new("f"));
        let _ = parse_idx(b, 1, Path::new("f"));
    });
}

#[test]
fn idx_reader_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.gz");
    let seeds = vec![
        gzip(&idx_file(&[3, 2, 2], &[1; 12])),
        gzip(&idx_file(&[4], &[0, 1, 2, 3])),
    ];
    fuzz("idx-gz", &seeds, 3_000, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = read_idx(&path, 3);
        let _ = read_idx(&path, 1);
    });
}

#[test]
fn checkpoint_reader() {
    let device = Device::flex();
    let seeds = vec![network().to_bytes().unwrap()];
    fuzz("checkpoint", &seeds, 3_000, |b| {
        let _ = Network::from_bytes(b, &device);
    });
}

#[test]
fn soft_target_cache_reader() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::new("teacher", "data", 4.0, "mlp:5,4");
    let make = || {
        Ok(Tensor::<2>::from_data(
            TensorData::new(vec![-0.5f32, -1.0, -2.0, -0.1, -3.0, -0.7], [2, 3]),
            &device,
        ))
    };
    cached_soft_targets(dir.path(), &key, 2, 3, &device, make).unwrap();
    let path = dir.path().join(key.file_name());
    let seeds = vec![std::fs::read(&path).unwrap()];
    fuzz("cache", &seeds, 3_000, |b| {
        std::fs::write(&path, b).unwrap();
        let (t, _, _) = cached_soft_targets(dir.path(), &key, 2, 3, &device, make).unwrap();
        assert_eq!(t.dims(), [2, 3]);
    });
}

#[test]
fn config_reader() {
    let cfg = ReproduceParams::preset(distill::experiment::Preset::Quick, 1, "d".into());
    let seeds = vec![toml::to_string_pretty(&cfg).unwrap().into_bytes()];
    fuzz("config", &seeds, 5_000, |b| {
        if let Ok(text) = std::str::from_utf8(b)
            && let Ok(c) = toml::from_str::<ReproduceParams>(text)
        {
            let _ = c.check();
        }
    });
}

#[test]
fn ensemble_manifest_and_report_readers() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let member = dir.path().join("m");
    network().save_complete(&member).unwrap();
    let ens = dir.path().join("ens");
    Classifier::create_ensemble(
        &ens,
        &[member.clone(), member],
        &device,
        &Default::default(),
    )
    .unwrap();
    let manifest = ens.join("ensemble.json");
    let seeds = vec![std::fs::read(&manifest).unwrap()];
    fuzz("ensemble", &seeds, 1_000, |b| {
        std::fs::write(&manifest, b).unwrap();
        let _ = Classifier::load(&ens, &device);
    });
    // A report.json as `summarize` reads it: a real one from the smoke test's layout is too
    // slow to make here, so a minimal valid one is built from its fields.
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let report = serde_json::json!({
        "experiment": "mnist", "preset": "smoke", "seed": 1, "temperature": 20.0, "alpha": 0.9,
        "backend": "flex", "git_commit": "x",
        "environment": {"hardware": "h", "backend": "flex", "git_commit": "x", "versions": {}, "os": "linux"},
        "dataset": {"name": "d", "train_size": 4, "validation_size": 1, "test_size": 2, "image": [2, 2], "classes": 2},
        "models": {"teacher": {"spec": "mlp:4", "test_errors": 1, "test_examples": 2,
            "class_errors": [1, 0], "class_examples": [1, 1], "params": 10, "train_seconds": 1.0,
            "infer_us_per_example": 1.0, "test_nll": 0.5, "validation_errors": 0,
            "confusion": [[0, 1], [0, 1]], "dir": "t"}},
        "config": {}, "total_seconds": 1.0, "notes": []
    });
    let path = run.join("report.json");
    std::fs::write(&path, report.to_string()).unwrap();
    assert!(summarize(std::slice::from_ref(&run)).is_ok());
    let seeds = vec![report.to_string().into_bytes()];
    let runs: Vec<PathBuf> = vec![run];
    fuzz("report", &seeds, 3_000, |b| {
        std::fs::write(&path, b).unwrap();
        if let Ok(s) = summarize(&runs) {
            let _ = s.markdown();
        }
    });
}

#[test]
fn npz_and_image_folder_readers() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("d.npz");
    let labels: Vec<u8> = (0..6).map(|i| i % 3).collect();
    crate::common::write_npz(
        &npz,
        &[
            ("x_train", crate::common::npy::<u8>(&[6, 2, 2], &[5; 24])),
            ("y_train", crate::common::npy::<u8>(&[6], &labels)),
            ("x_test", crate::common::npy::<f32>(&[3, 2, 2], &[0.5; 12])),
            ("y_test", crate::common::npy::<i64>(&[3], &[0, 1, 2])),
        ],
    );
    assert!(distill::data::load(&npz).is_ok());
    let seeds = vec![std::fs::read(&npz).unwrap()];
    fuzz("npz", &seeds, 2_000, |b| {
        std::fs::write(&npz, b).unwrap();
        let _ = distill::data::load(&npz);
    });
    // One PNG of an image folder, mutated.
    let root = dir.path().join("folder");
    for (split, class) in [("train", "a"), ("train", "b"), ("test", "a"), ("test", "b")] {
        let d = root.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        image::GrayImage::from_pixel(3, 3, image::Luma([7]))
            .save(d.join("0.png"))
            .unwrap();
    }
    assert!(distill::data::load(&root).is_ok());
    let png = root.join("train/a/0.png");
    let seeds = vec![std::fs::read(&png).unwrap()];
    fuzz("png", &seeds, 2_000, |b| {
        std::fs::write(&png, b).unwrap();
        let _ = distill::data::load(&root);
    });
}

#[test]
fn onnx_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let shape = distill::data::ImageShape::gray(3, 3);
    let seeds = vec![distill::model::export_onnx(&network())];
    std::fs::write(&path, &seeds[0]).unwrap();
    assert!(OnnxModel::load(&path, shape, OnnxOptions::default()).is_ok());
    fuzz("onnx", &seeds, 2_000, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = OnnxModel::load(&path, shape, OnnxOptions::default());
    });
}

#[test]
fn tree_ensemble_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees");
    let seeds: Vec<Vec<u8>> = [
        "rf_iris",
        "gb_binary_cancer",
        "lgbm_synth",
        "scaler_rf_wine",
    ]
    .iter()
    .map(|n| std::fs::read(fixtures.join(format!("{n}.onnx"))).unwrap())
    .collect();
    fuzz("trees", &seeds, 2_000, |b| {
        std::fs::write(&path, b).unwrap();
        if let Ok(m) = TreeEnsemble::load(&path) {
            let rows = vec![0.25f32; 2 * m.features()];
            assert_eq!(m.probabilities(&rows, 2).unwrap().len(), 2 * m.classes());
        }
    });
}

#[test]
fn random_bytes_never_allocate_beyond_the_input() {
    // Headers that claim 2^32 images must fail at once, not after allocating for them.
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..200 {
        let mut v = idx_file(&[u32::MAX, 28, 28], &[]);
        v.extend((0..rng.random_range(0..64)).map(|_| rng.next_u32() as u8));
        let e = parse_idx(&v, 3, Path::new("f")).unwrap_err().to_string();
        assert!(e.contains("truncated") || e.contains("overflow"), "{e}");
    }
}
