//! End-to-end checks of the `distill` binary: the smoke experiment, the inspection commands and
//! bad input. The recipes, the HTML report and `bench` are in `recipes.rs`.

use std::path::Path;

use crate::common::{
    assert_chart, assert_clean_failure, assert_model_fields, distill, report_of, reproduce_smoke,
    stderr, tiny_dataset,
};

#[test]
fn smoke_reproduce_writes_a_complete_report_and_reuses_the_teacher() {
    let out = tempfile::tempdir().unwrap();
    let o = reproduce_smoke(out.path(), "3");
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for row in ["| teacher |", "| student |", "| distilled |"] {
        assert!(stdout.contains(row), "table lacks {row}: {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["preset"], "smoke");
    assert_eq!(report["seed"], 3);
    assert_eq!(report["temperature"], 20.0);
    assert!(report["alpha"].as_f64().unwrap() > 0.0);
    assert!(report["backend"].as_str().unwrap().contains("flex"));
    // Timings depend on the pool's size, so the report says it.
    assert!(report["environment"]["threads"].as_u64().unwrap() >= 1);
    // Subnormals are kept unless DISTILL_DENORMALS=flush asks otherwise, and that is recorded.
    assert_eq!(report["environment"]["flush_denormals"], false);
    assert!(!report["git_commit"].as_str().unwrap().is_empty());
    assert_eq!(report["dataset"]["test_size"], 2000);
    assert!(report["dataset"]["train_size"].as_u64().unwrap() > 0);
    for m in ["teacher", "student", "distilled"] {
        let r = &report["models"][m];
        assert_eq!(r["test_examples"], 2000, "{m}");
        let errors = r["test_errors"].as_u64().unwrap();
        let class_errors: u64 = r["class_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(class_errors, errors, "{m}: class errors must add up");
        assert_eq!(r["class_errors"].as_array().unwrap().len(), 10);
        // Three epochs on 4,000 images: about 12 to 17% error on this seed (teacher 244,
        // student 291, distilled 345 of 2,000), far from chance (1,800) or a loss that learns
        // half as fast.
        let bar = match m {
            "teacher" => 350,
            "student" => 400,
            _ => 450,
        };
        assert!(errors < bar, "{m}: {errors} errors of 2000");
        assert!(r["params"].as_u64().unwrap() > 1_000_000);
        assert!(r["train_seconds"].as_f64().unwrap() > 0.0);
        assert!(r["infer_us_per_example"].as_f64().unwrap() > 0.0);
        // The batched pass over the test set: well under a millisecond an image for an MLP.
        let batched = r["batched_us_per_example"].as_f64().unwrap();
        assert!(batched > 0.0 && batched < 1000.0, "{m}: {batched} µs");
        // Two hidden layers, each with fewer silent units than the tenth of its width that
        // warns: the students' warm-up keeps the first steps at T = 20 from silencing
        // hundreds (this seed: 3 to 18 of 800).
        let silent: Vec<u64> = r["silent_units"]
            .as_array()
            .unwrap_or_else(|| panic!("{m}: silent_units missing"))
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(silent.len(), 2, "{m}");
        assert!(silent.iter().all(|&s| s < 80), "{m}: {silent:?}");
        assert!(out.path().join(m).join("model.safetensors").exists());
        assert!(out.path().join(m).join("metrics.jsonl").exists(), "{m}");
        assert!(out.path().join(m).join("complete.json").exists(), "{m}");
        assert!(out.path().join(m).join("config.toml").exists(), "{m}");
    }
    assert!(
        report["models"]["teacher"]["params"].as_u64()
            > report["models"]["student"]["params"].as_u64()
    );
    // The teacher-versus-student check reads validation errors, never test errors.
    let validation = |m: &str| report["models"][m]["validation_errors"].as_u64().unwrap();
    assert_eq!(
        report["teacher_better_than_student"].as_bool(),
        Some(validation("teacher") < validation("student"))
    );
    assert!(out.path().join("report.md").exists());
    assert!(out.path().join("config.toml").exists());
    let metrics = std::fs::read_to_string(out.path().join("student/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "one line per epoch");

    // Every model directory is accepted by `eval`.
    let o = distill(&[
        "eval",
        out.path().join("distilled").to_str().unwrap(),
        "--json",
        "--test-size",
        "2000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["errors"], report["models"]["distilled"]["test_errors"]);

    // Charts beside the report: decodable, not blank; the HTML page inlines the SVGs.
    for chart in [
        "learning_curves",
        "soften",
        "similarity_teacher",
        "confusion_teacher",
        "confusion_distilled",
    ] {
        assert_chart(&out.path().join(format!("{chart}.png")));
        let svg = std::fs::read_to_string(out.path().join(format!("{chart}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.len() > 2000, "{chart}.svg");
    }
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 5 && !html.contains("src=\"http"),
        "report.html not self-contained"
    );
    let dk = &report["dark_knowledge"];
    assert_eq!(dk["soften_label"], 7);
    for row in dk["similarity"].as_array().unwrap() {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6, "similarity rows sum to 1: {sum}");
    }

    inspect_commands(
        &out.path().join("teacher"),
        &out.path().join("distilled"),
        out.path(),
    );

    // Second run: teacher and cached soft targets are reused, results identical (same seed).
    let o = reproduce_smoke(out.path(), "3");
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let notes = again["notes"].to_string();
    assert!(notes.contains("teacher reused"), "{notes}");
    assert!(notes.contains("read from cache"), "{notes}");
    for m in ["teacher", "student", "distilled"] {
        assert_eq!(
            again["models"][m]["test_errors"], report["models"][m]["test_errors"],
            "{m} not reproducible"
        );
    }

    summarize_two_seeds(out.path(), &report);
}

/// A second seed (teacher reused) and `summarize` over both runs: per-seed errors, their mean,
/// the chart; mixing experiments or repeating a seed is refused.
fn summarize_two_seeds(first: &Path, first_report: &serde_json::Value) {
    let second = first.join("seed4");
    let teacher = first.join("teacher");
    let o = distill(&[
        "reproduce",
        "--preset",
        "smoke",
        "--seed",
        "4",
        "--teacher",
        teacher.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let second_report = report_of(&second);
    let summary_dir = first.join("summary");
    let o = distill(&[
        "summarize",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "--json",
        "--out",
        summary_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["seeds"], serde_json::json!([3, 4]));
    for m in ["teacher", "student", "distilled"] {
        let a = first_report["models"][m]["test_errors"].as_f64().unwrap();
        let b = second_report["models"][m]["test_errors"].as_f64().unwrap();
        let stat = &s["models"][m]["test_errors"];
        assert_eq!(stat["values"], serde_json::json!([a, b]), "{m}");
        assert!((stat["mean"].as_f64().unwrap() - (a + b) / 2.0).abs() < 1e-9);
        let classes = s["models"][m]["class_error_percent"].as_array().unwrap();
        assert_eq!(classes.len(), 10);
    }
    assert_seeds_headline(&s, &[first_report, &second_report]);
    assert_chart(&summary_dir.join("summary.png"));
    assert!(!summary_dir.join("losses.png").exists());
    let md = std::fs::read_to_string(summary_dir.join("summary.md")).unwrap();
    assert!(md.contains("| distilled |"), "{md}");
    let html = std::fs::read_to_string(summary_dir.join("summary.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("<td>distilled</td>"));

    let o = distill(&[
        "summarize",
        first.to_str().unwrap(),
        first.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "seed 3 appears twice");
    let o = distill(&["summarize", first.join("nothing").to_str().unwrap()]);
    assert_clean_failure(&o, "no report.json");

    // A report whose per-class arrays do not fit its class count is refused by name before
    // anything indexes into them.
    let crafted = first.join("crafted");
    std::fs::create_dir_all(&crafted).unwrap();
    let mut r = first_report.clone();
    r["models"]["student"]["class_examples"] = serde_json::json!([1, 2]);
    std::fs::write(crafted.join("report.json"), r.to_string()).unwrap();
    let o = distill(&["summarize", crafted.to_str().unwrap()]);
    assert_clean_failure(&o, "crafted/report.json");
    assert!(stderr(&o).contains("class examples"), "{}", stderr(&o));
}

/// The summary's headline states the mean and sd over seeds of the share of the student's
/// errors that distillation removed.
fn assert_seeds_headline(s: &serde_json::Value, reports: &[&serde_json::Value; 2]) {
    let reduction = |r: &serde_json::Value| {
        let e = |m: &str| r["models"][m]["test_errors"].as_f64().unwrap();
        (e("student") - e("distilled")) / e("student")
    };
    let (r1, r2) = (reduction(reports[0]), reduction(reports[1]));
    let h = &s["headline"];
    let mean = h["error_reduction"]["mean"].as_f64().unwrap();
    assert!((mean - (r1 + r2) / 2.0).abs() < 1e-9, "{h}");
    let sd = h["error_reduction"]["sd"].as_f64().unwrap();
    assert!((sd - (r1 - r2).abs() / 2f64.sqrt()).abs() < 1e-9, "{h}");
    let text = h["text"].as_str().unwrap();
    assert!(text.starts_with("Over 2 seeds, distillation "), "{text}");
    let (removed, changed) = (
        format!("removed {:.1}% of the student's test errors", 100.0 * mean),
        format!("changed by +{:.1}% on average", -100.0 * mean),
    );
    match mean > 0.0 {
        true => assert!(text.contains(&removed), "{text}"),
        false => assert!(text.contains(&changed), "{text}"),
    }
    assert!(
        text.contains(&format!("sd {:.1} points", 100.0 * sd)),
        "{text}"
    );
}

#[test]
fn bad_options_are_refused_with_clear_errors() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    assert_clean_failure(
        &distill(&[
            "reproduce",
            "--preset",
            "smoke",
            "--out",
            o,
            "--temperature",
            "0",
        ]),
        "temperature",
    );
    assert_clean_failure(
        &distill(&[
            "reproduce",
            "--preset",
            "smoke",
            "--out",
            o,
            "--temperature",
            "-2",
        ]),
        "temperature",
    );
    assert_clean_failure(
        &distill(&[
            "reproduce",
            "--preset",
            "smoke",
            "--out",
            o,
            "--alpha",
            "1.5",
        ]),
        "alpha",
    );
    assert_clean_failure(
        &distill(&[
            "reproduce",
            "--preset",
            "smoke",
            "--out",
            o,
            "--data-dir",
            "/no/such/dir",
        ]),
        "does not exist",
    );
    assert_clean_failure(
        &distill(&["train", "--model", "mlp:12,abc", "--out", o]),
        "does not parse",
    );
    assert_clean_failure(&distill(&["eval", "/no/such/model"]), "does not exist");
    assert_clean_failure(
        &distill(&[
            "sweep",
            "--teacher",
            "/no/such/model",
            "--out",
            o,
            "--validation-size",
            "0",
        ]),
        "validation errors",
    );
    let bad = out.path().join("badmodel");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    assert_clean_failure(&distill(&["eval", bad.to_str().unwrap()]), "badmodel");
}

#[test]
fn corrupt_data_files_are_named() {
    let d = tempfile::tempdir().unwrap();
    tiny_dataset(d.path(), 3, 30);
    std::fs::write(
        d.path().join("t10k-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 30, 1, 2],
    )
    .unwrap();
    let o = distill(&[
        "train",
        "--model",
        "mlp:4",
        "--out",
        d.path().join("m").to_str().unwrap(),
        "--data-dir",
        d.path().to_str().unwrap(),
        "--validation-size",
        "5",
    ]);
    assert_clean_failure(&o, "t10k-labels-idx1-ubyte");
    assert_clean_failure(&o, "truncated");
}

#[test]
fn paper_preset_fits_every_training_image() {
    // The full recipe (96 teacher epochs, 80 per student) on 120 tiny images: one step an epoch.
    let data = tempfile::tempdir().unwrap();
    tiny_dataset(data.path(), 10, 120);
    let out = tempfile::tempdir().unwrap();
    let o = distill(&[
        "reproduce",
        "--preset",
        "paper",
        "--preset-as-is",
        "--out",
        out.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(out.path());
    assert_eq!(r["preset"], "paper");
    assert_eq!(r["dataset"]["train_size"], 120);
    assert_eq!(r["dataset"]["validation_size"], 0);
    assert_model_fields(&r, &["teacher", "student", "distilled"]);
    for name in ["teacher", "student", "distilled"] {
        let m = &r["models"][name];
        assert!(m["validation_errors"].is_null(), "{name}: {m}");
        // Counted on training images, as there are no validation images.
        assert_eq!(m["silent_units"].as_array().unwrap().len(), 2, "{name}");
    }
    let metrics_of = |model: &str| {
        let path = out.path().join(model).join("metrics.jsonl");
        std::fs::read_to_string(path).unwrap()
    };
    assert_eq!(metrics_of("teacher").lines().count(), 96);
    let metrics = metrics_of("distilled");
    assert_eq!(metrics.lines().count(), 80);
    assert!(metrics.contains("\"validation_examples\":0"), "{metrics}");
}

#[test]
fn class_count_mismatch_and_divergence_are_reported() {
    let three = tempfile::tempdir().unwrap();
    tiny_dataset(three.path(), 3, 60);
    let five = tempfile::tempdir().unwrap();
    tiny_dataset(five.path(), 5, 60);
    let models = tempfile::tempdir().unwrap();
    let teacher = models.path().join("t");
    let common = ["--validation-size", "10", "--epochs", "1"];
    let mut args = vec![
        "train",
        "--model",
        "mlp:8",
        "--out",
        teacher.to_str().unwrap(),
        "--data-dir",
        three.path().to_str().unwrap(),
    ];
    args.extend(common);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let student = models.path().join("s");
    let mut args = vec![
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--student",
        "mlp:4",
        "--out",
        student.to_str().unwrap(),
        "--data-dir",
        five.path().to_str().unwrap(),
    ];
    args.extend(common);
    assert_clean_failure(&distill(&args), "classes");

    let args = vec![
        "train",
        "--model",
        "mlp:8",
        "--out",
        student.to_str().unwrap(),
        "--data-dir",
        three.path().to_str().unwrap(),
        "--lr",
        "1e30",
        "--validation-size",
        "10",
        "--epochs",
        "3",
    ];
    let o = distill(&args);
    assert_clean_failure(&o, "diverged");
    assert_clean_failure(&o, "step");
}

fn inspect_commands(teacher: &Path, student: &Path, tmp: &Path) {
    let t = teacher.to_str().unwrap();
    // Its reader gone (`| head`), the command ends by SIGPIPE, without a panic's message.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(["soften", t, "--index", "0", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(o.status.code() != Some(101), "{:?}", o.status);
    // soften --json: probabilities sum to 1 per temperature and entropy rises with T.
    let o = distill(&[
        "soften",
        t,
        "--class",
        "7",
        "--temperatures",
        "1,5,20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["label"], 7);
    assert_eq!(v["temperatures"].as_array().unwrap().len(), 3);
    let mut last_entropy = -1.0;
    for p in v["probs"].as_array().unwrap() {
        let p: Vec<f64> = p
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        let h = -p
            .iter()
            .filter(|x| **x > 0.0)
            .map(|x| x * x.ln())
            .sum::<f64>();
        assert!(h > last_entropy, "entropy must rise with T");
        last_entropy = h;
    }
    let plot = tmp.join("soften.png");
    let o = distill(&[
        "soften",
        t,
        "--index",
        "0",
        "--log",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("most probable first"));
    assert_chart(&plot);

    let heat = tmp.join("similarity.svg");
    let o = distill(&[
        "similarity",
        t,
        "--json",
        "--compare",
        student.to_str().unwrap(),
        "--plot",
        heat.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for row in v["matrix"].as_array().unwrap() {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }
    let agree = v["comparisons"][0]["top1_agreement"].as_f64().unwrap();
    assert!(agree > 0.5 && agree <= 1.0, "{agree}");
    assert!(std::fs::read_to_string(&heat).unwrap().contains("<svg"));

    assert_clean_failure(&distill(&["soften", t, "--index", "99999"]), "out of range");
    assert_clean_failure(
        &distill(&["soften", t, "--class", "12"]),
        "no image of class 12",
    );
    assert_clean_failure(
        &distill(&["soften", t, "--index", "1", "--temperatures", "1,0"]),
        "temperature",
    );
    assert_clean_failure(
        &distill(&["soften", "/no/model", "--index", "1"]),
        "does not exist",
    );
    assert_clean_failure(
        &distill(&["soften", t, "--index", "1", "--plot", "/no/such/dir/x.png"]),
        "does not exist",
    );
    assert_clean_failure(
        &distill(&["similarity", t, "--temperature", "-1"]),
        "temperature",
    );
    // A small sweep from the same teacher.
    let sw = tmp.join("sweep");
    let o = distill(&[
        "sweep",
        "--teacher",
        t,
        "--student",
        "mlp:16",
        "--temperatures",
        "2,8",
        "--epochs",
        "5",
        "--train-size",
        "2000",
        "--test-size",
        "500",
        "--out",
        sw.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sw.join("sweep.json")).unwrap()).unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    // Each point learned: 78 and 83 of 500 on this seed, against 450 for chance.
    for p in points {
        assert!(p["test_errors"].as_u64().unwrap() < 150, "{p}");
    }
    assert!(v["findings"][0].as_str().unwrap().contains("best T"));
    assert_chart(&sw.join("sweep.png"));
    let html = std::fs::read_to_string(sw.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("best T"),
        "sweep report.html"
    );
    assert_clean_failure(
        &distill(&[
            "sweep",
            "--teacher",
            t,
            "--temperatures",
            "0,2",
            "--out",
            sw.to_str().unwrap(),
        ]),
        "temperature",
    );
}
