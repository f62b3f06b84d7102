//! Helpers shared by the end-to-end tests: run the binary, check clean failures, write tiny
//! datasets.

pub mod lexer;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `distill` binary from the repository root.
pub fn distill(args: &[&str]) -> Output {
    distill_with_env(args, &[])
}

/// Trains the small MNIST teacher of the shard tests (`mlp:16`, one epoch on 2,000 images) into
/// `out`.
pub fn small_teacher(out: &str) {
    let o = distill(&[
        "train",
        "--model",
        "mlp:16",
        "--epochs",
        "1",
        "--train-size",
        "2000",
        "--out",
        out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// [`distill`] with extra environment variables.
pub fn distill_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

/// `distill reproduce --preset smoke --out DIR --seed SEED`.
pub fn reproduce_smoke(out: &Path, seed: &str) -> Output {
    reproduce_smoke_with(out, seed, &[])
}

/// The smoke preset cut to 1,500 training and 300 test images, for checks of files, refusals
/// and replays, where how well the models learn is not what is tested.
pub const SMALL_SMOKE: &[&str] = &["--train-size", "1500", "--test-size", "300"];

/// [`reproduce_smoke`] on [`SMALL_SMOKE`].
pub fn reproduce_small_smoke(out: &Path, seed: &str) -> Output {
    reproduce_smoke_with(out, seed, SMALL_SMOKE)
}

/// [`reproduce_smoke`] with `extra` arguments.
pub fn reproduce_smoke_with(out: &Path, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "reproduce",
        "--preset",
        "smoke",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        seed,
    ];
    args.extend(extra);
    distill(&args)
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
            ("x_train", npy(&[n(&ds.train), 28, 28], ds.train.images())),
            ("y_train", npy(&[n(&ds.train)], &labels(&ds.train))),
            ("x_test", npy(&[n(&ds.test), 28, 28], ds.test.images())),
            ("y_test", npy(&[n(&ds.test)], &labels(&ds.test))),
        ],
    );
}

/// The Python that runs the cross-checks: `DISTILL_PYTHON`, else the repository's `.venv`
/// (which `.ci/run` creates), else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("DISTILL_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Runs `tests/python/<script>` with `args` and returns its JSON output. Only tests whose peer
/// was importable when the suite was built call it (build.rs marks the others ignored, with
/// the reason; under `CI=true` none is), so a peer missing now is a failure.
pub fn python_check(script: &str, args: &[&Path]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let o = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} cannot start: {e}", python().display()));
    assert!(
        o.status.code() != Some(3),
        "{script} could not run ({}): CI must install its peer (.ci/run); elsewhere, rebuild \
         so that build.rs marks the check ignored",
        stderr(&o).trim()
    );
    assert!(o.status.success(), "{script} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("the check prints JSON")
}

/// Puts a ZipMap (a list of dictionaries, as skl2onnx writes by default) after a scikit-learn
/// export's `probabilities` output, in its place among the graph's outputs.
pub fn zipmap_probabilities(m: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb;
    let g = m.graph.as_mut().unwrap();
    g.node.push(pb::NodeProto {
        op_type: "ZipMap".into(),
        domain: "ai.onnx.ml".into(),
        input: vec!["probabilities".into()],
        output: vec!["output_probability".into()],
        ..Default::default()
    });
    let i = g
        .output
        .iter()
        .position(|o| o.name == "probabilities")
        .unwrap();
    g.output[i] = pb::ValueInfoProto {
        name: "output_probability".into(),
        ..Default::default()
    };
}

/// Rewrites the ONNX file `src` to `dst` after `edit` changes its protobuf.
pub fn edit_onnx(src: &Path, dst: &Path, edit: impl FnOnce(&mut tract_onnx::pb::ModelProto)) {
    use prost::Message;
    let mut m = tract_onnx::pb::ModelProto::decode(std::fs::read(src).unwrap().as_slice()).unwrap();
    edit(&mut m);
    std::fs::write(dst, m.encode_to_vec()).unwrap();
}

/// The MNIST slice the CNN and ONNX checks train on: 5 epochs of 5,000 images, 500 held out,
/// 1,000 test images.
pub const MNIST_SLICE: &[&str] = &[
    "--epochs",
    "5",
    "--train-size",
    "5000",
    "--validation-size",
    "500",
    "--test-size",
    "1000",
];

/// A PNG that decodes to a non-trivial picture: several colours, not one flat fill.
pub fn assert_chart(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        path.display()
    );
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert!(
        img.width() >= 800,
        "{} narrower than 800 px",
        path.display()
    );
    let mut colours = std::collections::HashSet::new();
    for p in img.pixels().step_by(7) {
        colours.insert(p.0);
    }
    assert!(
        colours.len() > 20,
        "{} looks blank ({} colours)",
        path.display(),
        colours.len()
    );
}

/// A run directory's `report.json`.
pub fn report_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Every listed model of a report has its fields, and its per-class errors add up to its total.
pub fn assert_model_fields(report: &serde_json::Value, names: &[&str]) {
    for m in names {
        let r = &report["models"][*m];
        for field in [
            "test_errors",
            "test_examples",
            "class_errors",
            "params",
            "train_seconds",
            "infer_us_per_example",
            "batched_us_per_example",
        ] {
            assert!(!r[field].is_null(), "models.{m}.{field} missing");
        }
        let sum: u64 = r["class_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let total = r["test_errors"].as_u64().unwrap();
        if r["spec"].as_str().unwrap().starts_with("mean of") {
            // Means rounded one by one: the parts may miss the rounded total by a few.
            assert!(sum.abs_diff(total) <= 5, "{m}: {sum} vs {total}");
        } else {
            assert_eq!(sum, total, "{m}");
        }
    }
}
