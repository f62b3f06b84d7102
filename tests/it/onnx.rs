//! ONNX in and out, checked against the real peers: a student exported with `distill export`
//! must give `distill eval`'s numbers in tract, in onnxruntime and (as a state_dict) in
//! PyTorch; fed back as a teacher it must give the original's soft targets; and a teacher
//! exported from PyTorch must teach a student.

use std::path::Path;

use crate::common::{MNIST_SLICE, assert_clean_failure, distill, npy, python_check, stderr};
use burn::tensor::{Device, Tensor, TensorData};
use distill::model::{Classifier, OnnxModel, OnnxOptions, OpenOptions, Predictor};

/// Trains a small model of `spec` on a slice of MNIST into `dir`.
fn small_model(dir: &Path, spec: &str) {
    let mut args = vec!["train", "--model", spec, "--out", dir.to_str().unwrap()];
    args.extend(MNIST_SLICE);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Test errors `distill eval MODEL` reports on the first 1,000 test images.
fn eval_errors(model: &Path, extra: &[&str]) -> u64 {
    let mut args = vec![
        "eval",
        model.to_str().unwrap(),
        "--json",
        "--test-size",
        "1000",
    ];
    args.extend(extra);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["errors"].as_u64().unwrap()
}

/// Largest absolute difference of two equally long vectors (NaN counts as infinite).
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if (x - y).is_nan() {
                f32::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0f32, f32::max)
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

/// The first 1,000 MNIST test images as `[1000, 784]` floats in [0, 1], and their labels.
fn test_images() -> (Vec<f32>, Vec<i64>) {
    let ds =
        distill::data::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let n = 1000;
    let pixels = ds.test.images()[..n * 784]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    let labels = ds.test.labels[..n].iter().map(|&l| l as i64).collect();
    (pixels, labels)
}

/// A slice student exported as ONNX and as a PyTorch state_dict, with the inputs, labels and
/// logits of 1,000 test images saved as `.npy` for the peers. Made once per test run and shared
/// by the checks below, each of which names the one peer it runs.
struct Exported {
    dir: std::path::PathBuf,
    onnx: std::path::PathBuf,
    torch: std::path::PathBuf,
    /// `x.npy` (images), `y.npy` (labels), `logits.npy` (distill's logits).
    x: std::path::PathBuf,
    y: std::path::PathBuf,
    logits: std::path::PathBuf,
    /// `distill eval`'s errors on the 1,000 images.
    errors: u64,
    /// The images as `[1000, 784]` floats and distill's logits for them, kept for the checks.
    pixels: Vec<f32>,
    ours: Vec<f32>,
}

static MLP: std::sync::OnceLock<Exported> = std::sync::OnceLock::new();
static CNN: std::sync::OnceLock<Exported> = std::sync::OnceLock::new();

fn exported_mlp() -> &'static Exported {
    MLP.get_or_init(|| export_student("mlp:64", "exported-mlp"))
}

fn exported_cnn() -> &'static Exported {
    CNN.get_or_init(|| export_student("cnn:8,16/32+bn", "exported-cnn"))
}

/// Trains a `spec` student on a slice, exports it both ways, and writes the peers' inputs.
fn export_student(spec: &str, name: &str) -> Exported {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join("student");
    small_model(&dir, spec);
    let (onnx, torch) = (root.join("student.onnx"), root.join("student.safetensors"));
    let o = distill(&[
        "export",
        dir.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
        "--torch",
        torch.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (pixels, labels) = test_images();
    let device = Device::flex();
    let images = Tensor::<2>::from_data(TensorData::new(pixels.clone(), [1000, 784]), &device);
    let net = Classifier::load(&dir, &device).unwrap();
    let ours = host(net.logits(&images).unwrap());
    let (x, y, logits) = (
        root.join("x.npy"),
        root.join("y.npy"),
        root.join("logits.npy"),
    );
    std::fs::write(&x, npy::<f32>(&[1000, 784], &pixels)).unwrap();
    std::fs::write(&y, npy::<i64>(&[1000], &labels)).unwrap();
    std::fs::write(&logits, npy::<f32>(&[1000, 10], &ours)).unwrap();
    let errors = eval_errors(&dir, &[]);
    assert!(
        errors < 160,
        "{errors} errors: the slice model did not learn"
    );
    Exported {
        dir,
        onnx,
        torch,
        x,
        y,
        logits,
        errors,
        pixels,
        ours,
    }
}

/// tract: the same logits within 1e-4 on 1,000 test images, the same test errors.
fn matches_in_tract(e: &Exported) {
    let device = Device::flex();
    let images = Tensor::<2>::from_data(TensorData::new(e.pixels.clone(), [1000, 784]), &device);
    let shape = Classifier::load(&e.dir, &device).unwrap().shape();
    let back = OnnxModel::load(&e.onnx, shape, OnnxOptions::default()).unwrap();
    let diff = max_diff(&e.ours, &host(back.logits(&images).unwrap()));
    assert!(diff <= 1e-4, "largest logit difference {diff}");
    assert_eq!(eval_errors(&e.onnx, &[]), e.errors);
}

/// onnx.checker and onnxruntime: the same test errors, names, opset and shape.
fn matches_in_onnxruntime(e: &Exported) {
    let v = python_check("onnx_check.py", &[&e.onnx, &e.x, &e.y]);
    assert_eq!(v["errors"].as_u64(), Some(e.errors), "{v}");
    assert_eq!(v["shape"], serde_json::json!([1000, 10]), "{v}");
    assert_eq!(v["opset"].as_i64(), Some(17), "{v}");
    assert_eq!(v["input"], "pixels", "{v}");
    assert_eq!(v["output"], "logits", "{v}");
}

/// PyTorch: the state_dict loads into the module named in the file and gives the same logits.
fn matches_in_pytorch(e: &Exported) {
    let v = python_check("torch_check.py", &[&e.torch, &e.x, &e.logits]);
    assert!(v["max_abs_diff"].as_f64().unwrap() <= 1e-4, "{v}");
}

#[test]
fn an_exported_mlp_gives_evals_numbers_in_tract() {
    matches_in_tract(exported_mlp());
}

#[test]
fn an_exported_cnn_with_batch_norm_gives_evals_numbers_in_tract() {
    matches_in_tract(exported_cnn());
}

#[test]
#[cfg_attr(
    no_onnxruntime,
    ignore = "onnxruntime is not importable by the tests' Python (see README); install it and rebuild"
)]
fn an_exported_mlp_gives_evals_numbers_in_onnxruntime() {
    matches_in_onnxruntime(exported_mlp());
}

#[test]
#[cfg_attr(
    no_onnxruntime,
    ignore = "onnxruntime is not importable by the tests' Python (see README); install it and rebuild"
)]
fn an_exported_cnn_with_batch_norm_gives_evals_numbers_in_onnxruntime() {
    matches_in_onnxruntime(exported_cnn());
}

#[test]
#[cfg_attr(
    no_torch,
    ignore = "PyTorch is not importable by the tests' Python (see README); install it and rebuild"
)]
fn an_exported_mlp_state_dict_gives_the_same_logits_in_pytorch() {
    matches_in_pytorch(exported_mlp());
}

#[test]
#[cfg_attr(
    no_torch,
    ignore = "PyTorch is not importable by the tests' Python (see README); install it and rebuild"
)]
fn an_exported_cnn_state_dict_gives_the_same_logits_in_pytorch() {
    matches_in_pytorch(exported_cnn());
}

#[test]
fn an_onnx_student_fed_back_as_a_teacher_gives_the_same_soft_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("teacher");
    small_model(&dir, "mlp:64");
    let onnx = tmp.path().join("teacher.onnx");
    let o = distill(&[
        "export",
        dir.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let device = Device::flex();
    let splits = distill::data::Splits::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist"),
        &Default::default(),
        Some(500),
        Some(2000),
        Some(10),
    )
    .unwrap();
    let how = OpenOptions {
        shape: Some(splits.dataset.shape),
        onnx: OnnxOptions::default(),
    };
    let targets = |path: &Path| -> Vec<f32> {
        let teacher = Classifier::load_teacher(path, &device, &how).unwrap();
        let cache = tmp
            .path()
            .join(format!("cache-{}", path.display().to_string().len()));
        let (t, _, _) = distill::distill::teacher_soft_targets(
            &teacher,
            path,
            &splits.train,
            4.0,
            &cache,
            &device,
        )
        .unwrap();
        host(t)
    };
    let a = targets(&dir);
    let b = targets(&onnx);
    assert_eq!(a.len(), 2000 * 10);
    let diff = max_diff(&a, &b);
    assert!(diff <= 1e-4, "largest soft-target difference {diff}");
}

#[test]
fn a_pytorch_cnn_teacher_from_onnx_teaches_an_mlp_student() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let teacher = root.join("examples/torch_teacher/mnist_cnn.onnx");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs/student");
    let mut args = vec![
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--input-norm",
        "0.1307,0.3081",
        "--student",
        "mlp:64",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(MNIST_SLICE);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The teacher is scored on the validation images before training, and it learned.
    let said = stderr(&o);
    assert!(
        said.contains("teacher: ") && said.contains(" validation errors of 500"),
        "{said}"
    );
    assert!(!said.contains("near chance"), "{said}");
    let alone = tmp.path().join("runs/alone");
    small_model(&alone, "mlp:64");
    // The cache goes beside the output directory, never beside the user's model file.
    assert!(tmp.path().join("runs/soft-target-cache").is_dir());
    assert!(!root.join("examples/torch_teacher/cache").exists());
    // Distillation is the difference: the same student, seed and data alone makes more errors.
    let errors = eval_errors(&out, &[]);
    let alone_errors = eval_errors(&alone, &[]);
    assert!(
        errors < 130 && errors < alone_errors,
        "distilled {errors}, alone {alone_errors} test errors of 1000"
    );
    // The teacher itself, in eval, with the normalization it was trained with.
    let teacher_errors = eval_errors(&teacher, &["--input-norm", "0.1307,0.3081"]);
    assert!(
        teacher_errors < 30,
        "teacher: {teacher_errors} errors of 1000"
    );

    // Fed pixels normalized otherwise than it was trained on, it is near chance, and told so.
    let wrong = tmp.path().join("runs/wrong");
    let o = distill(&[
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--input-norm",
        "20,1",
        "--student",
        "mlp:16",
        "--out",
        wrong.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-size",
        "500",
        "--validation-size",
        "500",
        "--test-size",
        "100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("near chance"), "{}", stderr(&o));
}

#[test]
fn onnx_files_that_cannot_teach_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07not protobuf at all \xff\xff\xff").unwrap();
    let o = distill(&["eval", garbage.to_str().unwrap(), "--test-size", "10"]);
    assert_clean_failure(&o, "garbage.onnx");
    assert_clean_failure(&o, "not an ONNX model");
    assert_eq!(o.status.code(), Some(4));
}

#[test]
fn an_onnx_model_serves_as_ensemble_member_and_in_the_inspection_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cnn = root.join("examples/torch_teacher/mnist_cnn.onnx");
    let cnn = cnn.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ens = tmp.path().join("ens");
    let norm = ["--input-norm", "0.1307,0.3081"];
    let mut args = vec![
        "ensemble",
        "--member",
        cnn,
        "--member",
        cnn,
        "--out",
        ens.to_str().unwrap(),
        "--test-size",
        "1000",
    ];
    args.extend(norm);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // Two identical members average to the member itself; the manifest keeps the options, so
    // the ensemble needs no --input-norm of its own.
    assert_eq!(eval_errors(&ens, &[]), eval_errors(Path::new(cnn), &norm));
    for cmd in [
        vec!["soften", cnn, "--index", "0", "--json"],
        vec!["similarity", cnn, "--json"],
    ] {
        let mut args = cmd.clone();
        args.extend(norm);
        let o = distill(&args);
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v.is_object(), "{cmd:?}: {v}");
    }
}
