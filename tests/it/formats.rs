//! Data beyond IDX: the same MNIST as a Keras-layout `.npz`, and a slice of it as an image
//! folder, give the same models as the IDX route; soft targets written in shards by separate
//! processes join into exactly the unsharded cache; soft targets cached per shifted view match
//! the plain cache on unshifted views and teach as the live teacher does. The `.npz` layouts of
//! Keras and PyTorch users read as one dataset.

use std::path::Path;

use crate::common::{
    SMALL_SMOKE, assert_clean_failure, distill, mnist_npz, npy, reproduce_smoke_with, stderr,
    write_npz,
};

/// An `.npy` entry of `data` (given in C order) stored in Fortran order, as numpy saves a
/// Fortran-contiguous array.
fn npy_fortran(shape: &[u64], data: &[u8]) -> Vec<u8> {
    use npyz::WriterBuilder;
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let mut fortran = vec![0u8; data.len()];
    for (i, &v) in data.iter().enumerate() {
        let (mut rest, mut at, mut stride) = (i, 0, 1);
        let mut index = vec![0; dims.len()];
        for d in (0..dims.len()).rev() {
            index[d] = rest % dims[d];
            rest /= dims[d];
        }
        for (d, &ix) in index.iter().enumerate() {
            at += ix * stride;
            stride *= dims[d];
        }
        fortran[at] = v;
    }
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(shape)
        .order(npyz::Order::Fortran)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(fortran).unwrap();
    w.finish().unwrap();
    buf
}

#[test]
fn npz_layouts_of_keras_and_pytorch_users_read_as_one_dataset() {
    let (n, h, w, c) = (12usize, 4usize, 5usize, 3usize);
    let nhwc: Vec<u8> = (0..n * h * w * c).map(|i| (i * 7 % 256) as u8).collect();
    let nchw: Vec<u8> = (0..n * c * h * w)
        .map(|i| {
            let (img, ch, p) = (i / (c * h * w), i / (h * w) % c, i % (h * w));
            nhwc[(img * h * w + p) * c + ch]
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    // Four columns: a fourth class that no image has still counts.
    let one_hot: Vec<f32> = (0..n * 4)
        .map(|i| f32::from(u8::from(i % 4 == usize::from(labels[i / 4]))))
        .collect();
    let (nu, hu, wu, cu) = (n as u64, h as u64, w as u64, c as u64);
    let variants = [
        (
            "keras",
            npy(&[nu, hu, wu, cu], &nhwc),
            npy(&[nu], &labels),
            3,
        ),
        // PyTorch's channels-first images; labels [N, 1] as keras.datasets.cifar10 gives them.
        (
            "torch",
            npy(&[nu, cu, hu, wu], &nchw),
            npy(&[nu, 1], &labels),
            3,
        ),
        (
            "one-hot",
            npy(&[nu, hu, wu, cu], &nhwc),
            npy(&[nu, 4], &one_hot),
            4,
        ),
        (
            "fortran",
            npy_fortran(&[nu, hu, wu, cu], &nhwc),
            npy(&[nu], &labels),
            3,
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (name, x, y, classes) in variants {
        let path = tmp.path().join(format!("{name}.npz"));
        write_npz(
            &path,
            &[
                ("x_train", x.clone()),
                ("y_train", y.clone()),
                ("x_test", x),
                ("y_test", y),
            ],
        );
        let ds = distill::data::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ds.shape.to_string(), "3x4x5", "{name}");
        assert_eq!(ds.classes, classes, "{name}");
        // distill holds images channel-major, as PyTorch lays them out.
        assert_eq!(ds.train.images(), nchw, "{name}");
        assert_eq!(ds.test.images(), nchw, "{name}");
        let got: Vec<u8> = ds.train.labels.iter().map(|&l| l as u8).collect();
        assert_eq!(got, labels, "{name}");
    }
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn npz_gives_the_same_smoke_experiment_as_idx() {
    let tmp = tempfile::tempdir().unwrap();
    // Under another name, as a user's own data would be: the report must name it.
    let npz = tmp.path().join("handwritten.npz");
    mnist_npz(&npz);
    let (a, b) = (tmp.path().join("idx"), tmp.path().join("npz"));
    for (out, data) in [(&a, "data/mnist"), (&b, npz.to_str().unwrap())] {
        let mut extra = vec!["--data", data];
        extra.extend(SMALL_SMOKE);
        let o = reproduce_smoke_with(out, "1", &extra);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (ra, rb) = (report(&a), report(&b));
    for m in ["teacher", "student", "distilled"] {
        assert_eq!(
            ra["models"][m]["test_errors"], rb["models"][m]["test_errors"],
            "{m}"
        );
        let w = |d: &Path| std::fs::read(d.join(m).join("model.safetensors")).unwrap();
        assert!(
            w(&a) == w(&b),
            "{m}: weights differ between the IDX and npz routes"
        );
    }
    assert_eq!(rb["dataset"]["name"], "handwritten");
    let title = |d: &Path| {
        let md = std::fs::read_to_string(d.join("report.md")).unwrap();
        md.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(title(&a), "# distill: mnist (smoke preset)");
    assert_eq!(title(&b), "# distill: handwritten (smoke preset)");
    let html = std::fs::read_to_string(b.join("report.html")).unwrap();
    assert!(html.contains("distill: handwritten (smoke preset), seed 1"));
    assert!(
        !html.contains("mnist"),
        "the page names data it did not run on"
    );
}

/// Writes the first `n` images of `split` as PNG files under `root/name/<label>/`.
fn pngs(split: &distill::data::Split, n: usize, root: &Path, name: &str) {
    for i in 0..n {
        let dir = root.join(name).join(split.labels[i].to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let img =
            image::GrayImage::from_raw(28, 28, split.images()[i * 784..(i + 1) * 784].to_vec())
                .unwrap();
        img.save(dir.join(format!("{i:05}.png"))).unwrap();
    }
}

#[test]
fn an_image_folder_gives_the_same_model_as_idx() {
    let tmp = tempfile::tempdir().unwrap();
    let ds =
        distill::data::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    // A slice, sorted by class as a folder lists it, in both formats.
    let sorted = |s: &distill::data::Split, n: usize| {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by_key(|&i| s.labels[i]);
        s.subset(&idx)
    };
    let (train, test) = (sorted(&ds.train, 600), sorted(&ds.test, 200));
    let folder = tmp.path().join("folder");
    pngs(&train, 600, &folder, "train");
    pngs(&test, 200, &folder, "test");
    let idx = tmp.path().join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    let labels =
        |s: &distill::data::Split| -> Vec<u8> { s.labels.iter().map(|&l| l as u8).collect() };
    crate::common::write_idx(
        &idx.join("train-images-idx3-ubyte"),
        &[600, 28, 28],
        train.images(),
    );
    crate::common::write_idx(
        &idx.join("train-labels-idx1-ubyte"),
        &[600],
        &labels(&train),
    );
    crate::common::write_idx(
        &idx.join("t10k-images-idx3-ubyte"),
        &[200, 28, 28],
        test.images(),
    );
    crate::common::write_idx(&idx.join("t10k-labels-idx1-ubyte"), &[200], &labels(&test));
    let mut results = Vec::new();
    for data in [&idx, &folder] {
        let out = tmp.path().join(format!(
            "model-{}",
            data.file_name().unwrap().to_string_lossy()
        ));
        let o = distill(&[
            "train",
            "--model",
            "mlp:64",
            "--epochs",
            "2",
            "--validation-size",
            "100",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        results.push((
            String::from_utf8_lossy(&o.stdout).into_owned(),
            std::fs::read(out.join("model.safetensors")).unwrap(),
        ));
    }
    assert!(
        results[0].1 == results[1].1,
        "weights differ between the IDX and folder routes"
    );
    let errors = |s: &str| {
        s.split(" test errors")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(errors(&results[0].0), errors(&results[1].0));

    // torchvision's layout names the held-out split val/; without either, the error says so.
    let first = distill::data::load(&folder).unwrap();
    std::fs::rename(folder.join("test"), folder.join("val")).unwrap();
    // A test/ of loose, unlabelled images (as Kaggle ships them) is passed over for val/.
    std::fs::create_dir(folder.join("test")).unwrap();
    std::fs::copy(folder.join("val/0/00000.png"), folder.join("test/1.png")).unwrap();
    let val = distill::data::load(&folder).unwrap();
    assert_eq!(val.test.images(), first.test.images());
    assert_eq!(val.test.labels, first.test.labels);
    std::fs::remove_dir_all(folder.join("val")).unwrap();
    let e = distill::data::load(&folder).unwrap_err().to_string();
    assert!(e.contains("needs a test/ folder (or val/"), "{e}");
}

/// The cache files of `dir` (not the shards' hidden lock files), sorted.
fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".safetensors") && !name.starts_with('.')
        })
        .collect();
    files.sort();
    files
}

/// The `log_probs` bytes of every cache file in `dir` whose name contains `part`, in shard order.
fn cache_bytes(dir: &Path, part: &str) -> Vec<u8> {
    let mut files = cache_files(dir);
    files.retain(|p| p.to_string_lossy().contains(part));
    let mut out = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        out.extend_from_slice(st.tensor("log_probs").unwrap().data());
    }
    out
}

#[test]
fn three_shard_processes_give_the_unsharded_soft_targets_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (teacher, shards, whole) = (p("teacher"), p("shards"), p("whole"));
    crate::common::small_teacher(&teacher);
    // Three processes at once, as array jobs would run them.
    let children: Vec<_> = (1..=3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_distill"))
                .args(["soft-targets", "--teacher", &teacher, "--out", &shards])
                .args(["--shard", &format!("{i}/3"), "--train-size", "6000"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = distill(&[
        "soft-targets",
        "--teacher",
        &teacher,
        "--out",
        &whole,
        "--train-size",
        "6000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let joined = cache_bytes(Path::new(&shards), "-shard-");
    // 6,000 rows of 10 classes, in shards of 2,048, 2,048 and 1,904 rows.
    assert_eq!(joined.len(), 6000 * 10 * 4);
    assert_eq!(cache_files(Path::new(&shards)).len(), 3);
    assert!(joined == cache_bytes(Path::new(&whole), "teacher-logprobs-"));

    let student = p("student");
    let distill_from = |cache: &str| {
        distill(&[
            "distill",
            "--teacher",
            &teacher,
            "--student",
            "mlp:16",
            "--epochs",
            "1",
            "--cache-dir",
            cache,
            "--out",
            &student,
            "--train-size",
            "6000",
        ])
    };
    let o = distill_from(&shards);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("joined from 3 shards"),
        "{}",
        stderr(&o)
    );

    // A shard cut another way beside them: mixed, refused.
    let names: Vec<_> = std::fs::read_dir(&shards)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let first = names
        .iter()
        .find(|n| n.to_string_lossy().contains("shard-1-of-3"))
        .unwrap();
    let stray = first
        .to_string_lossy()
        .replace("shard-1-of-3", "shard-1-of-2");
    std::fs::copy(first, &stray).unwrap();
    assert_clean_failure(&distill_from(&shards), "cut two ways");
    std::fs::remove_file(&stray).unwrap();
    // One missing: refused by name, never silently recomputed.
    let second = first
        .to_string_lossy()
        .replace("shard-1-of-3", "shard-2-of-3");
    std::fs::remove_file(&second).unwrap();
    assert_clean_failure(
        &distill_from(&shards),
        "shard 2 of 3 (rows 2048..4096) is missing",
    );
}

#[test]
fn the_presets_are_left_as_set_on_the_mnist_in_this_repository() {
    use distill::experiment::{FitToData, Preset, ReproduceParams};
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let ds = distill::data::load(&data).unwrap();
    let energy = ds.train.mean_squared_norm();
    assert!((energy - 87.8).abs() < 0.5, "{energy}");
    let fit = FitToData {
        schedule: true,
        validation: true,
    };
    for preset in [Preset::Quick, Preset::Paper] {
        let mut cfg = ReproduceParams::preset(preset, 1, data.clone());
        let notes = cfg.fit_to_data(fit, ds.train.len(), 28, energy);
        assert!(notes.is_empty(), "{notes:?}");
        let mut as_set = ReproduceParams::preset(preset, 1, data.clone());
        as_set.auto_temperature = Some(false);
        assert_eq!(cfg, as_set);
    }
}

/// Test errors `distill eval` counts for the model in `dir`.
fn test_errors(dir: &str) -> u64 {
    let o = distill(&["eval", dir, "--json", "--test-size", "2000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["errors"].as_u64().unwrap()
}

#[test]
fn soft_targets_per_view_are_cached_once_and_teach_as_the_live_teacher_does() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (teacher, plain, views) = (p("teacher"), p("plain"), p("views"));
    let slice = ["--train-size", "3000", "--validation-size", "300"];
    let o = distill(
        &[
            &[
                "train", "--model", "mlp:64", "--epochs", "2", "--out", &teacher,
            ],
            &slice[..],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = distill(
        &[
            &["soft-targets", "--teacher", &teacher, "--out", &plain],
            &slice[..],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let student = |out: &str, views_cache: Option<&str>| {
        let mut args = vec!["distill", "--teacher", &teacher, "--student", "mlp:32"];
        args.extend([
            "--epochs", "3", "--jitter", "1", "--seed", "4", "--out", out,
        ]);
        args.extend(slice);
        if let Some(dir) = views_cache {
            args.extend(["--augment-cache", "9", "--cache-dir", dir]);
        }
        let o = distill(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let note = student(&p("a"), Some(&views));
    assert!(note.contains("computed and cached"), "{note}");
    // Each model directory records what its model learned from.
    let config = |d: &str| std::fs::read_to_string(Path::new(&p(d)).join("config.toml")).unwrap();
    assert!(config("teacher").contains("objective = \"hard labels\""));
    let learned = config("a");
    assert!(
        learned.contains(
            "objective = \"kd (T = 20, alpha = 0.9) from soft targets cached for 9 views"
        ),
        "{learned}"
    );
    // ... and the command line that named its teacher and data.
    assert!(
        learned.contains("command = [") && learned.contains("\"--augment-cache\""),
        "{learned}"
    );
    assert!(note.contains("largest probability error"), "{note}");

    // View 0 of every image is the unshifted image: its soft targets are the plain cache's,
    // to float16 precision. The other eight are the eight distinct 1-px shifts.
    let file = std::fs::read_dir(&views)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let lp = st.tensor("log_probs").unwrap();
    assert_eq!(lp.dtype(), safetensors::Dtype::F16);
    let stored: Vec<f32> = lp
        .data()
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let full: Vec<f32> = cache_bytes(Path::new(&plain), "teacher-logprobs-")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let n = full.len() / 10;
    assert!(n >= 2700, "{n} transfer images");
    assert_eq!(lp.shape(), [n * 9, 10]);
    for (i, row) in full.chunks_exact(10).enumerate() {
        let view0 = &stored[i * 90..i * 90 + 10];
        for (a, b) in row.iter().zip(view0) {
            assert!((a.exp() - b.exp()).abs() < 1e-3, "image {i}: {a} vs {b}");
        }
    }
    let shifts = st.tensor("shifts").unwrap().data().to_vec();
    for (i, image) in shifts.chunks_exact(18).enumerate() {
        let mut seen: Vec<(i8, i8)> = image
            .chunks_exact(2)
            .map(|s| (s[0] as i8, s[1] as i8))
            .collect();
        assert_eq!(seen[0], (0, 0), "image {i}");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "image {i}: {image:?}");
    }

    // Read back, the cache trains the same student; an altered file is recomputed.
    let note = student(&p("b"), Some(&views));
    assert!(note.contains("read from"), "{note}");
    let model = |d: &str| std::fs::read(Path::new(&p(d)).join("model.safetensors")).unwrap();
    assert!(model("a") == model("b"));
    let mut altered = bytes.clone();
    let at = altered.len() - 100;
    altered[at] ^= 0x40;
    std::fs::write(&file, altered).unwrap();
    let note = student(&p("c"), Some(&views));
    assert!(note.contains("stale"), "{note}");
    assert!(model("a") == model("c"));

    // Misaligned views (soft targets of other images or shifts) would teach far worse than
    // the live teacher on the same shifts.
    student(&p("live"), None);
    let (cached, live) = (test_errors(&p("a")), test_errors(&p("live")));
    eprintln!("test errors of 2,000: views {cached}, live {live}");
    assert!(
        cached <= live + live / 5 + 10,
        "views {cached} vs live {live} test errors"
    );
}
