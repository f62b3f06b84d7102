//! Convolutional models end to end on a small MNIST slice: a CNN teacher teaches an MLP
//! student and the reverse, and every inspection command takes a CNN.

use std::path::Path;

use crate::common::{MNIST_SLICE, assert_clean_failure, distill, stderr};

/// The shared MNIST slice, seed 2.
const SEED: [&str; 2] = ["--seed", "2"];

fn run(args: &[&str]) -> std::process::Output {
    let o = distill(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

fn train(spec: &str, out: &Path) {
    let mut args = vec!["train", "--model", spec, "--out", out.to_str().unwrap()];
    args.extend(MNIST_SLICE);
    args.extend(SEED);
    run(&args);
}

fn distill_into(teacher: &Path, student: &str, out: &Path) {
    let mut args = vec![
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--student",
        student,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(MNIST_SLICE);
    args.extend(SEED);
    run(&args);
}

/// Test errors on the first 1,000 test images.
fn errors(model: &Path) -> u64 {
    let o = run(&[
        "eval",
        model.to_str().unwrap(),
        "--json",
        "--test-size",
        "1000",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["errors"].as_u64().unwrap()
}

#[test]
fn a_cnn_teaches_an_mlp_and_an_mlp_teaches_a_cnn() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    let (cnn, mlp) = (p("cnn"), p("mlp"));
    train("cnn:8,16/64", &cnn);
    train("mlp:128", &mlp);
    let cnn_errors = errors(&cnn);
    // On 5,000 images, 5 epochs, a working CNN is well under 10% error; a broken convolution,
    // pooling or reshape is near chance (900 of 1,000).
    assert!(cnn_errors < 100, "CNN: {cnn_errors} errors of 1000");

    distill_into(&cnn, "mlp:64", &p("cnn-to-mlp"));
    distill_into(&mlp, "cnn:4,8/32", &p("mlp-to-cnn"));
    let to_mlp = errors(&p("cnn-to-mlp"));
    let to_cnn = errors(&p("mlp-to-cnn"));
    assert!(to_mlp < 150, "CNN-taught MLP: {to_mlp} errors of 1000");
    assert!(to_cnn < 150, "MLP-taught CNN: {to_cnn} errors of 1000");

    // The checkpoint carries the architecture.
    let o = run(&["eval", cnn.to_str().unwrap(), "--test-size", "100"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cnn:8,16/64"),
        "eval names the architecture: {}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Inspection commands, ensembles and sweeps take a CNN as they take an MLP.
    let c = cnn.to_str().unwrap();
    let o = run(&["soften", c, "--index", "3", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let at_one: Vec<f64> = v["probs"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert!((at_one.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{v}");
    let top = (0..10).max_by(|&a, &b| at_one[a].total_cmp(&at_one[b]));
    assert_eq!(top, v["label"].as_u64().map(|l| l as usize), "{v}");
    let o = run(&[
        "similarity",
        c,
        "--json",
        "--compare",
        p("cnn-to-mlp").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The MLP it taught agrees with it on most images (0.93 on this seed).
    let agreement = v["comparisons"][0]["top1_agreement"].as_f64().unwrap();
    assert!(agreement > 0.85, "{v}");
    let ens = p("ensemble");
    run(&[
        "ensemble",
        "--member",
        c,
        "--member",
        mlp.to_str().unwrap(),
        "--out",
        ens.to_str().unwrap(),
    ]);
    assert!(errors(&ens) < 150);
    let mut args = vec![
        "sweep",
        "--teacher",
        c,
        "--temperatures",
        "3",
        "--student",
        "cnn:4/16",
        "--out",
    ];
    let sweep = p("sweep");
    args.push(sweep.to_str().unwrap());
    // Three short epochs teach the small CNN (33 errors of 200 on this seed; chance is 180).
    args.extend([
        "--epochs",
        "3",
        "--train-size",
        "2000",
        "--validation-size",
        "200",
        "--test-size",
        "200",
    ]);
    args.extend(SEED);
    run(&args);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep.json")).unwrap()).unwrap();
    let errors = v["points"][0]["test_errors"].as_u64().unwrap();
    assert!(
        errors < 60,
        "CNN student of the sweep: {errors} errors of 200"
    );
}

#[test]
fn cnn_specs_that_cannot_fit_the_images_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m");
    let o = distill(&[
        "train",
        "--model",
        "cnn:4,4,4,4,4,4",
        "--out",
        out.to_str().unwrap(),
        "--train-size",
        "100",
        "--validation-size",
        "50",
        "--test-size",
        "10",
        "--epochs",
        "1",
    ]);
    assert_clean_failure(&o, "halve");
    assert!(!out.join("model.safetensors").exists());
    let o = distill(&["train", "--model", "cnn:4/", "--out", out.to_str().unwrap()]);
    assert_clean_failure(&o, "does not parse");
}
