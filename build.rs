//! Stamps the binary with the git commit it was built from (with `-dirty` when tracked files
//! differ from that commit), so a report names the code that produced it even when the
//! working tree has moved on since the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    // --no-optional-locks: `status` must not rewrite .git/index, which would make this script
    // rerun on every build.
    Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    for path in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let git_dir = Path::new(&git_dir);
        // HEAD moves on checkout, the branch ref on commit, the index on add. A path that does
        // not exist (a fresh clone has no packed-refs; a packed branch has no loose ref) would
        // make cargo treat this script as stale on every build, recompiling the crate each time.
        let mut watched: Vec<_> = ["HEAD", "index", "packed-refs"]
            .iter()
            .map(|f| git_dir.join(f))
            .collect();
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(git_dir.join(branch));
        }
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=DISTILL_GIT_COMMIT={commit}");
    browser_cfg();
    python_peers_cfg();
    slurm_cfg();
}

/// Marks builds without a headless browser (`cfg(no_chromium)`), so the test that opens the
/// HTML report is reported by the test runner as ignored, with the reason, instead of passing
/// silently. Under CI a missing browser is not excused: the test then runs and fails.
fn browser_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_chromium)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    let found = ["chromium", "chromium-browser"].iter().any(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found && std::env::var_os("CI").is_none() {
        println!("cargo::rustc-cfg=no_chromium");
    }
}

/// Marks builds whose test Python cannot import a peer (`cfg(no_onnxruntime)`,
/// `cfg(no_torch)`), so the checks of exported students in that peer are listed as ignored,
/// with the reason, instead of passing without running. Under CI every peer must be there.
/// The Python is the tests' own: `DISTILL_PYTHON`, else `.venv/bin/python`, else `python3`.
fn python_peers_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_onnxruntime)");
    println!("cargo::rustc-check-cfg=cfg(no_torch)");
    println!("cargo::rerun-if-env-changed=DISTILL_PYTHON");
    // Watched only when present: a missing path would rerun this script on every build.
    if Path::new(".venv/pyvenv.cfg").exists() {
        println!("cargo::rerun-if-changed=.venv/pyvenv.cfg");
    }
    if std::env::var_os("CI").is_some() {
        return;
    }
    let python = std::env::var_os("DISTILL_PYTHON")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(Path::new(".venv/bin/python").to_path_buf()).filter(|p| p.exists()))
        .unwrap_or_else(|| "python3".into());
    let imports = |modules: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !imports("onnx, onnxruntime, numpy") {
        println!("cargo::rustc-cfg=no_onnxruntime");
    }
    if !imports("torch, safetensors, numpy") {
        println!("cargo::rustc-cfg=no_torch");
    }
}

/// Marks builds that cannot bring up a one-node Slurm (`cfg(no_slurm)`): `munged`, `slurmctld`,
/// `slurmd` or `sbatch` is not on the PATH, or the build is not root (the daemons run jobs as
/// root). The test that submits `examples/slurm` to it is then reported as ignored, with the
/// reason. Under CI a missing Slurm is not excused: the test then runs and fails.
fn slurm_cfg() {
    println!("cargo::rustc-check-cfg=cfg(no_slurm)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |tool: &str| std::env::split_paths(&path).any(|d| d.join(tool).is_file());
    let found = ["munged", "slurmctld", "slurmd", "sbatch"]
        .iter()
        .all(|t| on_path(t));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !(found && root) && std::env::var_os("CI").is_none() {
        println!("cargo::rustc-cfg=no_slurm");
    }
}
