//! Runs that survive `kill -9`: a run killed mid-way and resumed with `--resume` ends
//! bit-identical to an uninterrupted one (weights, and metrics apart from times), and a kill at
//! any moment leaves a state that loads.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{distill, metrics_without_times, stderr};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_distill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts")
}

/// Lines of `dir/metrics.jsonl` (0 when absent).
fn epochs_recorded(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |s| s.lines().count())
}

/// Starts `args`, and sends SIGKILL once `watch` has recorded `epochs` epochs.
fn kill_after_epochs(args: &[&str], watch: &Path, epochs: usize) {
    let mut child = spawn(args);
    let start = Instant::now();
    while epochs_recorded(watch) < epochs {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no epoch recorded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn assert_same_model(a: &Path, b: &Path) {
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        weights(a) == weights(b),
        "{} and {} differ",
        a.display(),
        b.display()
    );
    assert_eq!(
        metrics_without_times(a),
        metrics_without_times(b),
        "{}",
        b.display()
    );
    assert!(b.join("complete.json").exists());
    assert!(!b.join("resume").exists(), "resumable state left behind");
}

fn run(args: &[&str]) {
    let o = distill(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
}

/// The slice of MNIST every run here trains on.
const SLICE: [&str; 6] = [
    "--train-size",
    "3000",
    "--test-size",
    "200",
    "--validation-size",
    "300",
];

/// `train` with dropout and jitter (every random stream in use), on a slice of MNIST, with a
/// checkpoint every epoch (these epochs take well under the default interval).
fn train_args<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut args = vec!["train", "--checkpoint-every", "0", "--model", "mlp:96"];
    args.extend(["--epochs", epochs]);
    args.extend(SLICE);
    args.extend([
        "--hidden-dropout",
        "0.2",
        "--jitter",
        "1",
        "--seed",
        "5",
        "--out",
        out,
    ]);
    args
}

#[test]
fn train_killed_after_an_epoch_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let (full_s, cut_s) = (full.to_str().unwrap(), cut.to_str().unwrap());
    run(&train_args(full_s, "6"));
    kill_after_epochs(&train_args(cut_s, "6"), &cut, 2);
    assert!(cut.join("resume/state.json").exists());
    assert!(!cut.join("complete.json").exists());
    let mut resume = train_args(cut_s, "6");
    resume.push("--resume");
    run(&resume);
    assert_same_model(&full, &cut);
    // Resuming a finished run keeps it as it is.
    let before = std::fs::read(cut.join("model.safetensors")).unwrap();
    run(&resume);
    assert_eq!(
        before,
        std::fs::read(cut.join("model.safetensors")).unwrap()
    );
}

/// A kill after a run marked itself finished but before it removed its resumable state leaves
/// both; `--resume` keeps the model and finishes the removal. `--keep-checkpoints` leaves the
/// same two on purpose, which stands in for that kill.
#[test]
fn resuming_a_finished_run_removes_the_state_a_kill_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let dir_s = dir.to_str().unwrap();
    let mut kept = train_args(dir_s, "2");
    kept.push("--keep-checkpoints");
    run(&kept);
    assert!(dir.join("complete.json").exists() && dir.join("resume").exists());
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let mut resume = train_args(dir_s, "2");
    resume.push("--resume");
    run(&resume);
    assert_eq!(
        before,
        std::fs::read(dir.join("model.safetensors")).unwrap()
    );
    assert!(dir.join("complete.json").exists());
    assert!(!dir.join("resume").exists(), "resumable state left behind");
}

/// `distill` of an `mlp:48` student from `teacher` for `epochs` on a slice of MNIST, its soft
/// targets cached in `cache`.
fn distill_args(teacher: &Path, cache: &Path, out: &Path, epochs: &str) -> Vec<String> {
    let (teacher, cache, out) = (teacher.to_str(), cache.to_str(), out.to_str());
    let mut args = vec![
        "distill",
        "--teacher",
        teacher.unwrap(),
        "--student",
        "mlp:48",
    ];
    args.extend(["--epochs", epochs]);
    args.extend(SLICE);
    args.extend(["--cache-dir", cache.unwrap(), "--out", out.unwrap()]);
    args.into_iter().map(String::from).collect()
}

#[test]
fn distill_from_a_cached_teacher_killed_and_resumed_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = tmp.path().join("teacher");
    run(&train_args(teacher.to_str().unwrap(), "2"));
    let cache = tmp.path().join("cache");
    let args = |out: &Path| -> Vec<String> {
        let mut a = distill_args(&teacher, &cache, out, "6");
        a.extend(["--seed", "9", "--checkpoint-every", "0"].map(String::from));
        a
    };
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let full_args = strs(&args(&full));
    run(&full_args.iter().map(String::as_str).collect::<Vec<_>>());
    let cut_args = strs(&args(&cut));
    let cut_refs: Vec<&str> = cut_args.iter().map(String::as_str).collect();
    kill_after_epochs(&cut_refs, &cut, 3);
    let mut resume = cut_refs.clone();
    resume.push("--resume");
    run(&resume);
    assert_same_model(&full, &cut);
}

#[test]
fn reproduce_killed_during_the_distilled_student_resumes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let args = |out: &Path| -> Vec<String> {
        [
            "reproduce",
            "--preset",
            "smoke",
            "--seed",
            "7",
            "--checkpoint-every",
            "0",
            "--train-size",
            "1500",
            "--test-size",
            "300",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let full_args = args(&full);
    run(&full_args.iter().map(String::as_str).collect::<Vec<_>>());
    let cut_args = args(&cut);
    let cut_refs: Vec<&str> = cut_args.iter().map(String::as_str).collect();
    kill_after_epochs(&cut_refs, &cut.join("distilled"), 1);
    let student_before = std::fs::read(cut.join("student/model.safetensors")).unwrap();
    let mut resume = cut_refs.clone();
    resume.push("--resume");
    run(&resume);
    for m in ["teacher", "student", "distilled"] {
        assert_same_model(&full.join(m), &cut.join(m));
    }
    // The finished student was kept, not trained again.
    assert_eq!(
        student_before,
        std::fs::read(cut.join("student/model.safetensors")).unwrap()
    );
    let report = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap()
    };
    let (a, b) = (report(&full), report(&cut));
    for m in ["teacher", "student", "distilled"] {
        assert_eq!(
            a["models"][m]["test_errors"], b["models"][m]["test_errors"],
            "{m}"
        );
    }
}

#[test]
fn checkpoints_wait_for_their_interval_and_the_run_still_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let (full_s, cut_s) = (full.to_str().unwrap(), cut.to_str().unwrap());
    let hourly = |out| {
        let mut args = train_args(out, "4");
        let at = args
            .iter()
            .position(|a| *a == "--checkpoint-every")
            .unwrap();
        args[at + 1] = "3600";
        args
    };
    let mut full_args = hourly(full_s);
    full_args.push("--keep-checkpoints");
    run(&full_args);
    // Only the last epoch was checkpointed.
    let mut kept: Vec<String> = std::fs::read_dir(full.join("resume"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["epoch-4.optim", "epoch-4.safetensors", "state.json"]);
    // A kill before the first checkpoint leaves nothing to resume: the run starts again and
    // ends with the same bytes.
    let cut_args = hourly(cut_s);
    kill_after_epochs(&cut_args, &cut, 2);
    assert!(!cut.join("resume/state.json").exists());
    assert!(!cut.join("model.safetensors").exists());
    let mut resume = cut_args.clone();
    resume.push("--resume");
    run(&resume);
    assert_same_model(&full, &cut);
}

/// Kills at random moments (mid-epoch, mid-write, between files): every time, the directory
/// resumes to the same bytes as the uninterrupted run. `DISTILL_KILLS` sets how many (12).
#[test]
fn random_kills_never_leave_a_state_that_fails_to_load() {
    let kills: usize = std::env::var("DISTILL_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run(&train_args(full.to_str().unwrap(), "5"));
    let cut = tmp.path().join("cut");
    let cut_s = cut.to_str().unwrap().to_string();
    let mut resume = train_args(&cut_s, "5");
    resume.push("--resume");
    // A fixed sequence of delays spread over a whole run (about 1 to 2 s here).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for k in 0..kills {
        let _ = std::fs::remove_dir_all(&cut);
        // Runs that were killed and resumed more than once count too: half the time the kill
        // falls on a resumed run.
        if k % 2 == 1 {
            let mut child = spawn(&train_args(&cut_s, "5"));
            std::thread::sleep(Duration::from_millis(400));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(50 + x % 1500);
        let mut child = spawn(&resume);
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let o = distill(&resume);
        assert!(
            o.status.success(),
            "kill {k} after {delay:?} left a state that does not resume: {}",
            stderr(&o)
        );
        assert_same_model(&full, &cut);
    }
}

#[test]
fn resume_does_not_keep_a_student_distilled_from_another_teacher() {
    let tmp = tempfile::tempdir().unwrap();
    let [first, second] = ["first", "second"].map(|t| tmp.path().join(t));
    run(&train_args(first.to_str().unwrap(), "1"));
    let mut other = train_args(second.to_str().unwrap(), "1");
    let seed = other.iter().position(|a| *a == "--seed").unwrap() + 1;
    other[seed] = "6";
    run(&other);
    let out = tmp.path().join("student");
    let cache = tmp.path().join("cache");
    let distill_from = |teacher: &Path| {
        let mut args = distill_args(teacher, &cache, &out, "2");
        args.push("--resume".into());
        run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let from_first = distill_from(&first);
    // The same loss, shapes and settings towards another teacher's soft targets: trained
    // again, not taken as finished.
    let from_second = distill_from(&second);
    assert_ne!(from_first, from_second);
    // Towards the first teacher again it trains the first student again, bit for bit.
    assert_eq!(distill_from(&first), from_first);
}
