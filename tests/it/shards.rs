//! Soft-target shards in a directory shared by many processes (a cluster's array tasks on a
//! shared file system): a rerun of a finished shard only verifies it, a broken one is
//! replaced, and two processes given one shard leave it whole.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{small_teacher, stderr};

const SLICE: [&str; 2] = ["--train-size", "6000"];

/// A small teacher trained on a slice of MNIST, in `dir/teacher`.
fn teacher(dir: &Path) -> String {
    let t = dir.join("teacher").to_str().unwrap().to_string();
    small_teacher(&t);
    t
}

/// `distill soft-targets --shard SHARD` of `teacher` into `out`, not yet waited for.
fn shard_command(teacher: &str, out: &Path, shard: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_distill"));
    c.args(["soft-targets", "--teacher", teacher, "--shard", shard])
        .args(["--out", out.to_str().unwrap()])
        .args(SLICE)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs one shard and returns what it printed; it must succeed.
fn run_shard(teacher: &str, out: &Path, shard: &str) -> String {
    let o = shard_command(teacher, out, shard).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one file of `dir` whose name ends with `suffix`.
fn only(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn a_rerun_verifies_a_finished_shard_and_replaces_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher(tmp.path());
    let out = tmp.path().join("cache");
    let first = run_shard(&teacher, &out, "1/3");
    assert!(
        first.contains("rows 0..2048 of 6000 at T = 20 computed"),
        "{first}"
    );
    let shard = only(&out, "-shard-1-of-3.safetensors");
    let good = std::fs::read(&shard).unwrap();
    let modified = std::fs::metadata(&shard).unwrap().modified().unwrap();
    // A finished shard: verified against its recorded SHA-256, not rewritten.
    let again = run_shard(&teacher, &out, "1/3");
    assert!(
        again.contains("already there, verified (SHA-256 "),
        "{again}"
    );
    assert_eq!(
        std::fs::metadata(&shard).unwrap().modified().unwrap(),
        modified
    );
    // A flipped bit, then a cut file: each found, recomputed and replaced by the same bytes.
    let mut flipped = good.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 1;
    std::fs::write(&shard, &flipped).unwrap();
    let repaired = run_shard(&teacher, &out, "1/3");
    assert!(
        repaired.contains("was broken (its values do not match"),
        "{repaired}"
    );
    assert!(std::fs::read(&shard).unwrap() == good);
    std::fs::write(&shard, &good[..good.len() / 2]).unwrap();
    // What a writer killed mid-way leaves: its temporary file, cleared by the rerun.
    let name = shard.file_name().unwrap().to_string_lossy().into_owned();
    let leftover = out.join(format!(".{name}.tmp4242.deadnode"));
    std::fs::write(&leftover, b"half a shard").unwrap();
    let repaired = run_shard(&teacher, &out, "1/3");
    assert!(repaired.contains("was broken (corrupt"), "{repaired}");
    assert!(std::fs::read(&shard).unwrap() == good);
    assert!(!leftover.exists());
}

#[test]
fn two_processes_given_one_shard_leave_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher(tmp.path());
    let (solo, shared) = (tmp.path().join("solo"), tmp.path().join("shared"));
    run_shard(&teacher, &solo, "2/3");
    let reference = std::fs::read(only(&solo, "-shard-2-of-3.safetensors")).unwrap();
    for round in 0..3 {
        let _ = std::fs::remove_dir_all(&shared);
        let children: Vec<_> = (0..2)
            .map(|_| shard_command(&teacher, &shared, "2/3").spawn().unwrap())
            .collect();
        let outcomes: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        // Whichever way they meet, one computes; the other verifies its shard, or is refused
        // (exit 7) while the first holds the shard's lock. Never a torn or mixed file.
        for o in &outcomes {
            let code = o.status.code();
            assert!(
                code == Some(0)
                    || (code == Some(7)
                        && stderr(o).contains("is being written by another distill process")),
                "round {round}: {code:?} {}",
                stderr(o)
            );
        }
        assert!(outcomes.iter().any(|o| o.status.success()));
        let written = std::fs::read(only(&shared, "-shard-2-of-3.safetensors")).unwrap();
        assert!(written == reference, "round {round}: the shard differs");
        let names: Vec<String> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains(".tmp")),
            "round {round}: {names:?}"
        );
    }
}
