//! Results that can be trusted: the same seed gives the same bytes from scratch, unfinished
//! models are refused, and a teacher is named by its directory.

use std::path::Path;

use crate::common::{
    SMALL_SMOKE, assert_clean_failure, distill, metrics_without_times, reproduce_small_smoke,
    stderr,
};

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Two `reproduce --preset smoke` runs from scratch, in two directories, one on one worker
/// thread and one on two: teacher training (dropout, jitter), soft targets and both students
/// all replay, so every model file and cache file is byte-identical and the reports' numbers
/// are equal (the README's determinism claims).
#[test]
fn the_same_seed_from_scratch_gives_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, threads) in [(&a, "1"), (&b, "2")] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_distill"))
            .args(["reproduce", "--preset", "smoke", "--seed", "2", "--out"])
            .arg(dir)
            .args(SMALL_SMOKE)
            .env("RAYON_NUM_THREADS", threads)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for m in ["teacher", "student", "distilled"] {
        let file = |d: &Path| std::fs::read(d.join(m).join("model.safetensors")).unwrap();
        assert!(
            file(&a) == file(&b),
            "{m}/model.safetensors differs between runs"
        );
        assert_eq!(
            metrics_without_times(&a.join(m)),
            metrics_without_times(&b.join(m)),
            "{m}/metrics.jsonl"
        );
    }
    let caches = |d: &Path| -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(d.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    assert_eq!(caches(&a), caches(&b), "soft-target caches differ");
    let (ra, rb) = (report(&a), report(&b));
    for m in ["teacher", "student", "distilled"] {
        for field in [
            "test_errors",
            "validation_errors",
            "class_errors",
            "test_nll",
        ] {
            assert_eq!(
                ra["models"][m][field], rb["models"][m][field],
                "{m} {field}"
            );
        }
    }
    assert_eq!(
        ra["dark_knowledge"]["soften_probs"],
        rb["dark_knowledge"]["soften_probs"]
    );
    // The charts drawn from the models' answers are the same bytes.
    assert_eq!(ra["changed"], rb["changed"]);
    for chart in ["changed", "changed_gallery", "errors_moved", "class_errors"] {
        let svg = |d: &Path| std::fs::read(d.join(format!("{chart}.svg"))).unwrap();
        assert!(svg(&a) == svg(&b), "{chart}.svg differs between runs");
    }
}

/// A model directory whose training did not finish (no completion marker, or weights changed
/// after it) is refused by `eval`, as `--teacher`, and retrained rather than reused by
/// `reproduce`; a teacher given as a file is refused by name.
#[test]
fn unfinished_models_and_teacher_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = reproduce_small_smoke(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let teacher = run.join("teacher");
    let marker = teacher.join("complete.json");
    assert!(marker.exists());
    let config = std::fs::read_to_string(teacher.join("config.toml")).unwrap();
    assert!(config.contains("mlp:1200,1200"), "{config}");

    // A killed run leaves weights without a marker.
    std::fs::remove_file(&marker).unwrap();
    let o = distill(&["eval", teacher.to_str().unwrap(), "--test-size", "100"]);
    assert_clean_failure(&o, "looks interrupted");
    let out = tmp.path().join("student");
    let o = distill(&[
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-size",
        "500",
    ]);
    assert_clean_failure(&o, "looks interrupted");
    // `reproduce` over the same directory does not reuse it: it trains the teacher again.
    let o = reproduce_small_smoke(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let notes = report(&run)["notes"].to_string();
    assert!(!notes.contains("teacher reused"), "{notes}");
    assert!(
        notes.contains("not usable") && notes.contains("interrupted"),
        "{notes}"
    );
    assert!(marker.exists());

    // Weights rewritten after the marker (a run killed over a finished directory).
    let weights = teacher.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    std::fs::write(&weights, &bytes).unwrap();
    let o = distill(&["eval", teacher.to_str().unwrap(), "--test-size", "100"]);
    assert_clean_failure(&o, "changed after training finished");

    // A teacher is its directory, not the weights file inside it.
    let o = distill(&[
        "distill",
        "--teacher",
        run.join("student/model.safetensors").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "not a file inside a model directory");
}

/// Two runs on one `--out`: the second is refused, naming the first (exit code 7).
#[test]
fn a_second_run_on_the_same_out_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_distill"))
        .args([
            "reproduce",
            "--preset",
            "smoke",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".distill.lock");
    let start = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = reproduce_small_smoke(&out, "1");
    let pid = first.id();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_clean_failure(&o, &format!("in use by another distill process (pid {pid}"));
    assert_eq!(o.status.code(), Some(7));
}

/// A full disk (simulated with a file-size limit, `ulimit -f`): the run fails with a clear
/// I/O error (exit code 5) and the last good checkpoint stays as it was.
#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::common::tiny_dataset(&data, 3, 60);
    let out = tmp.path().join("model");
    let args = |seed: &str| -> Vec<String> {
        [
            "train",
            "--model",
            "mlp:64",
            "--epochs",
            "2",
            "--validation-size",
            "6",
            "--seed",
            seed,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let o = distill(&args("1").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(out.join("model.safetensors")).unwrap();
    assert!(good.len() > 4096);
    // Files may grow to 4 KiB: the config and metrics fit, the weights do not. SIGXFSZ is
    // ignored so that the write fails with an error instead of killing the process.
    let script = format!(
        "trap '' XFSZ; ulimit -f 4; exec \"$0\" {}",
        args("2").join(" ")
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_distill")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_clean_failure(&o, "model.safetensors");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), good);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
