//! End-to-end checks of the `distill` binary's recipes (transfer sets, losses, ensembles) and
//! of `bench`.

use crate::common::{
    assert_chart, assert_clean_failure, assert_model_fields, distill, report_of, stderr,
    tiny_dataset,
};

#[test]
fn transfer_recipes_run_from_the_cli() {
    let out = tempfile::tempdir().unwrap();
    let omit = out.path().join("omit");
    let o = distill(&[
        "reproduce",
        "--experiment",
        "omit-3",
        "--preset",
        "smoke",
        "--out",
        omit.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(&omit);
    assert_eq!(r["experiment"], "omit-3");
    assert_model_fields(
        &r,
        &["teacher", "student", "distilled", "distilled_adjusted"],
    );
    // No 3 in the transfer set: the student alone never predicts 3 correctly.
    let threes = r["models"]["student"]["class_examples"][3]
        .as_u64()
        .unwrap();
    assert_eq!(
        r["models"]["student"]["class_errors"][3].as_u64().unwrap(),
        threes
    );
    let b = &r["bias_adjust"];
    assert_eq!(b["classes"], serde_json::json!([3]));
    let before = b["validation_errors_before"]
        .as_u64()
        .expect("errors before the shift");
    let after = b["validation_errors_after"]
        .as_u64()
        .expect("errors after the shift");
    // Shift 0 is among those searched, so "after <= before" would hold for any chooser; a
    // working one must find a positive shift that strictly lowers the validation errors.
    assert!(
        after < before,
        "the shift won nothing back: {before} -> {after}"
    );
    assert!(b["shift"].as_f64().unwrap() > 0.0, "{b}");
    assert_eq!(
        r["models"]["distilled_adjusted"]["validation_errors"].as_u64(),
        Some(after)
    );
    assert!(b["method"].as_str().unwrap().contains("validation"));

    // The same teacher reused for a small-data run; the teacher is not retrained.
    let small = out.path().join("small");
    let teacher = omit.join("teacher");
    let o = distill(&[
        "reproduce",
        "--experiment",
        "small-data",
        "--preset",
        "smoke",
        "--out",
        small.to_str().unwrap(),
        "--teacher",
        teacher.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(&small);
    assert_model_fields(&r, &["teacher", "student_full", "student", "distilled"]);
    assert!(r["notes"].to_string().contains("not retrained"));
    // A teacher taken from elsewhere reports the training time it took there.
    assert!(r["models"]["teacher"]["train_seconds"].as_f64().unwrap() > 0.0);

    // Distilling on shifted images adds the control student trained alone on the same shifts.
    let shifted = out.path().join("shifted");
    let o = distill(&[
        "reproduce",
        "--preset",
        "smoke",
        "--out",
        shifted.to_str().unwrap(),
        "--teacher",
        teacher.to_str().unwrap(),
        "--distilled-jitter",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(&shifted);
    assert_model_fields(&r, &["teacher", "student", "student_jitter", "distilled"]);
    assert!(r["notes"].to_string().contains("live"));
    let config = std::fs::read_to_string(shifted.join("config.toml")).unwrap();
    assert!(config.contains("distilled_jitter = 1"), "{config}");
    let control = std::fs::read_to_string(shifted.join("student_jitter/config.toml")).unwrap();
    assert!(control.contains("jitter = 1"), "{control}");
    // Runs of different experiments are not averaged together.
    let o = distill(&["summarize", omit.to_str().unwrap(), small.to_str().unwrap()]);
    assert_clean_failure(&o, "experiment");

    // distill with transfer options, and their refusals.
    let student = out.path().join("s");
    let t = teacher.to_str().unwrap();
    let s = student.to_str().unwrap();
    let base = [
        "distill",
        "--teacher",
        t,
        "--student",
        "mlp:32",
        "--out",
        s,
        "--epochs",
        "1",
        "--train-size",
        "3000",
        "--test-size",
        "500",
    ];
    let mut args = base.to_vec();
    args.extend(["--only-classes", "7,8"]);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("raised by"));
    for (extra, needle) in [
        (vec!["--transfer-fraction", "0"], "(0, 1]"),
        (vec!["--transfer-fraction", "1.5"], "(0, 1]"),
        (vec!["--omit-classes", "11"], "does not exist"),
        (vec!["--omit-classes", "0,1,2,3,4,5,6,7,8,9"], "every class"),
        (vec!["--bias-adjust", "lots"], "bias-adjust"),
        (
            vec!["--omit-classes", "3", "--validation-size", "0"],
            "needs a validation split",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        assert_clean_failure(&distill(&args), needle);
    }
    // Without a validation split every training image is fitted and epochs record 0 of 0.
    let mut args = base.to_vec();
    args.extend(["--validation-size", "0"]);
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(student.join("metrics.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(m["validation_examples"], 0, "{metrics}");
}

#[test]
fn losses_recipe_trains_both_students_with_every_loss() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("losses");
    let o = distill(&[
        "reproduce",
        "--experiment",
        "losses",
        "--preset",
        "smoke",
        "--test-size",
        "300",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(&dir);
    assert_eq!(r["experiment"], "losses");
    // Every model learned: on this seed the teacher makes 16 errors of 300 and the students
    // 17 to 74, where chance is 270 and a loss with a wrong sign or scale stays near it.
    let errors = |m: &str| r["models"][m]["test_errors"].as_u64().unwrap();
    assert!(errors("teacher") < 60, "teacher: {}", errors("teacher"));
    assert!(
        r["models"]["teacher"]["spec"]
            .as_str()
            .unwrap()
            .starts_with("cnn:")
    );
    // Each student alone, with kd, and with every newer loss; each records what it learned
    // from, so a row of the table cannot silently be another loss.
    for (model, spec, objective) in [
        ("student", "mlp:", "hard labels"),
        ("distilled", "mlp:", "kd (T = 20"),
        ("distilled_dkd", "mlp:", "dkd (T = 4"),
        ("distilled_dist", "mlp:", "dist (tau = 1"),
        (
            "distilled_kd_ls",
            "mlp:",
            "kd (T = 2, alpha = 0.9) with logit standardization",
        ),
        ("distilled_dkd_ls", "mlp:", "dkd (T = 2"),
        ("cnn_student", "cnn:", "hard labels"),
        ("cnn_distilled", "cnn:", "kd (T = 20"),
        ("cnn_distilled_dkd", "cnn:", "dkd (T = 4"),
        ("cnn_distilled_dist", "cnn:", "dist (tau = 1"),
        ("cnn_distilled_kd_ls", "cnn:", "with logit standardization"),
        ("cnn_distilled_dkd_ls", "cnn:", "dkd (T = 2"),
    ] {
        assert_model_fields(&r, &[model]);
        assert!(
            errors(model) < 120,
            "{model}: {} errors of 300",
            errors(model)
        );
        assert!(
            r["models"][model]["spec"]
                .as_str()
                .unwrap()
                .starts_with(spec),
            "{model}"
        );
        let config = std::fs::read_to_string(dir.join(model).join("config.toml")).unwrap();
        assert!(config.contains(objective), "{model}: {config}");
        // A model directory names the build that made it, as reports do.
        assert!(
            config.contains("built_by = \"distill "),
            "{model}: {config}"
        );
        assert!(config.contains(", commit "), "{model}: {config}");
    }
    assert_eq!(r["models"].as_object().unwrap().len(), 13);
    // The headline names the loss whose MLP student made the fewest errors.
    let mlp = [
        "distilled",
        "distilled_dkd",
        "distilled_dist",
        "distilled_kd_ls",
        "distilled_dkd_ls",
    ];
    let fewest = mlp
        .iter()
        .map(|m| r["models"][m]["test_errors"].as_u64().unwrap())
        .min();
    assert_eq!(
        r["headline"]["best_loss"][1].as_u64(),
        fewest,
        "{}",
        r["headline"]
    );
    let text = r["headline"]["text"].as_str().unwrap();
    let loss = r["headline"]["best_loss"][0].as_str().unwrap();
    assert!(
        text.contains(&format!(", {loss},")) || text.starts_with(&format!("Best loss: {loss},")),
        "{text}"
    );
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("[loss_trial.cnn_student]"), "{config}");
    // The summary lays the students out by loss, beside a chart of it.
    let summary = out.path().join("summary");
    let o = distill(&[
        "summarize",
        dir.to_str().unwrap(),
        "--out",
        summary.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(summary.join("summary.md")).unwrap();
    let row = format!(
        "| dkd | {} | {}.0 ± 0.0 | {} | {}.0 ± 0.0 |",
        errors("distilled_dkd"),
        errors("distilled_dkd"),
        errors("cnn_distilled_dkd"),
        errors("cnn_distilled_dkd")
    );
    assert!(md.contains(&row), "{row} not in {md}");
    assert_chart(&summary.join("losses.png"));
}

#[test]
fn ensemble_recipe_and_command() {
    let out = tempfile::tempdir().unwrap();
    let o = distill(&[
        "reproduce",
        "--experiment",
        "ensemble",
        "--preset",
        "smoke",
        "--distilled-mixup",
        "0.4",
        "--distilled-epochs",
        "4",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report_of(out.path());
    assert_model_fields(
        &r,
        &[
            "single",
            "ensemble",
            "student",
            "student_mixup",
            "distilled",
        ],
    );
    // Only the distilled model and its control are blended and trained longer.
    let config = |m: &str| std::fs::read_to_string(out.path().join(m).join("config.toml")).unwrap();
    for m in ["distilled", "student_mixup"] {
        let c = config(m);
        assert!(
            c.contains("mixup = 0.4") && c.contains("epochs = 4"),
            "{m}: {c}"
        );
    }
    let student: toml::Value = toml::from_str(&config("student")).unwrap();
    assert!(
        student["model"]["train"].get("mixup").is_none(),
        "{student}"
    );
    assert!(
        r["notes"].to_string().contains("blended by mixup (0.4)"),
        "{}",
        r["notes"]
    );
    assert!(
        r["models"]["ensemble"]["spec"]
            .as_str()
            .unwrap()
            .contains("ensemble of 2")
    );
    // The distilled model trains on jittered images, so the ensemble runs live.
    assert!(
        r["notes"].to_string().contains("computed live"),
        "{}",
        r["notes"]
    );
    // The ensemble is checked against the student alone on the validation split.
    assert!(r["models"]["ensemble"]["validation_errors"].is_u64());
    assert!(r["teacher_better_than_student"].is_boolean(), "{r}");
    // The headline states the share of the ensemble's gain kept, or that there was none.
    let e = |m: &str| r["models"][m]["test_errors"].as_f64().unwrap();
    let text = r["headline"]["text"].as_str().unwrap();
    if e("ensemble") < e("single") {
        let kept = r["headline"]["ensemble_gain_kept"].as_f64().unwrap();
        let want = (e("single") - e("distilled")) / (e("single") - e("ensemble"));
        assert!((kept - want).abs() < 1e-9, "{kept} against {want}");
        assert!(text.starts_with("The distilled student keeps"), "{text}");
    } else {
        assert!(text.starts_with("The ensemble makes"), "{text}");
    }

    // `distill ensemble` from the members, evaluated like any model.
    let ens = out.path().join("ens2");
    let m1 = out.path().join("members/m1");
    let m2 = out.path().join("members/m2");
    let o = distill(&[
        "ensemble",
        "--member",
        m1.to_str().unwrap(),
        "--member",
        m2.to_str().unwrap(),
        "--out",
        ens.to_str().unwrap(),
        "--test-size",
        "2000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = distill(&[
        "eval",
        ens.to_str().unwrap(),
        "--json",
        "--test-size",
        "2000",
    ]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["errors"], r["models"]["ensemble"]["test_errors"]);

    // A member with another class count is refused.
    let three = tempfile::tempdir().unwrap();
    tiny_dataset(three.path(), 3, 60);
    let odd = out.path().join("odd");
    let o = distill(&[
        "train",
        "--model",
        "mlp:8",
        "--out",
        odd.to_str().unwrap(),
        "--data-dir",
        three.path().to_str().unwrap(),
        "--validation-size",
        "10",
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = distill(&[
        "ensemble",
        "--member",
        m1.to_str().unwrap(),
        "--member",
        odd.to_str().unwrap(),
        "--out",
        out.path().join("bad").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "classes");
}

#[test]
fn bench_times_only_the_figures_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_dataset(tmp.path(), 10, 200);
    let json = tmp.path().join("bench.json");
    let o = distill(&[
        "bench",
        "--only",
        "student_latency_b1_us,lever_sgd_ours_ms",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--epoch-examples",
        "128",
        "--json",
        json.to_str().unwrap(),
        "--data-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&String> = report["figures"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["lever_sgd_ours_ms", "student_latency_b1_us"]);
    assert!(
        report["figures"]["student_latency_b1_us"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}
