//! The bench scripts, as far as they can be checked without a GPU or a quiet machine: their
//! argument handling, `bench/gpu.sh`'s refusal where there is no GPU, and the JSON it
//! assembles from stand-ins for the two timed commands.

use std::path::Path;
use std::process::{Command, Output};

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("bash")
        .arg(root.join("bench").join(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stand-in for a timed command: writes every `--only` figure with this median to `--json`.
fn stand_in(dir: &Path, name: &str, median: f64) -> String {
    let path = dir.join(format!("{name}.py"));
    let body = format!(
        "import json, sys\na = sys.argv[1:]\nout = a[a.index('--json') + 1]\n\
         figs = a[a.index('--only') + 1].split(',')\n\
         json.dump({{'figures': {{n: {{'median': {median}, 'min': 1, 'max': 9}} for n in figs}}}}, \
         open(out, 'w'))\n"
    );
    std::fs::write(&path, body).unwrap();
    format!("python3 {}", path.display())
}

#[test]
fn gpu_sh_checks_its_arguments_and_refuses_without_a_gpu() {
    let o = script("gpu.sh", &["--reps", "0"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--reps must be an integer >= 1"),
        "{}",
        stderr(&o)
    );
    let o = script("gpu.sh", &["--frobnicate"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = script("gpu.sh", &["--binary", "/no/such/distill"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = script(
        "gpu.sh",
        &[],
        &[("DISTILL_NVIDIA_SMI", "/no/such/nvidia-smi")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no NVIDIA GPU"), "{}", stderr(&o));
}

#[test]
fn gpu_sh_writes_one_json_and_one_line_from_its_two_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let smi = tmp.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 550.54.15'\n").unwrap();
    Command::new("chmod").arg("+x").arg(&smi).status().unwrap();
    let out = tmp.path().join("gpu.json");
    let (ours, theirs) = (
        stand_in(tmp.path(), "d", 2.0),
        stand_in(tmp.path(), "t", 8.0),
    );
    let smi = smi.to_str().unwrap();
    fn env<'a>(smi: &'a str, distill: &'a str, torch: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("DISTILL_NVIDIA_SMI", smi),
            ("GPU_DISTILL_CMD", distill),
            ("GPU_TORCH_CMD", torch),
        ]
    }
    let o = script(
        "gpu.sh",
        &["--out", out.to_str().unwrap()],
        &env(smi, &ours, &theirs),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("NVIDIA H100") && stdout.contains("teacher_epoch_s 0.25"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["driver"], "550.54.15");
    assert_eq!(v["ratios"]["teacher_step_ms"], 0.25, "{v}");
    // A throughput is higher-is-better: its ratio is inverted to read as a time.
    assert_eq!(v["ratios"]["teacher_throughput_b1024"], 4.0, "{v}");
    assert!(
        v["distill_error"].is_null() && v["pytorch_error"].is_null(),
        "{v}"
    );

    // A failed run is recorded in the file and fails the script, the other run kept.
    let o = script(
        "gpu.sh",
        &["--out", out.to_str().unwrap()],
        &env(smi, "false", &theirs),
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(v["distill"].is_null(), "{v}");
    assert!(
        v["distill_error"]
            .as_str()
            .unwrap()
            .starts_with("exit status 1"),
        "{v}"
    );
    assert_eq!(v["pytorch"]["teacher_step_ms"]["median"], 8.0, "{v}");
}

#[test]
fn compare_sh_refuses_bad_foreign_teacher_options() {
    let o = script("compare.sh", &["--onnx", "no-equals-sign"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("NAME=FILE"), "{}", stderr(&o));
    let o = script("compare.sh", &["--onnx", "x=/no/such.onnx"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    let o = script("compare.sh", &["--no-foreign", "--foreign-only"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let forest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees/rf_iris.onnx");
    let o = script("compare.sh", &["--forest", forest.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs --forest-rows"), "{}", stderr(&o));
    let o = script(
        "compare.sh",
        &["--ort-lib", "/no/such/libonnxruntime.so"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--ort-lib"), "{}", stderr(&o));
}
