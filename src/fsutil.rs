//! Atomic file writes and content hashes.
//!
//! Checkpoints, caches and reports must never be left half-written when a run is interrupted,
//! so every write goes to a temporary file in the same directory and is renamed into place.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Writes `value` as pretty-printed JSON to `path` atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| Error::Format {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    write_atomic(path, json.as_bytes())
}

/// Writes `bytes` to `path` atomically: a temporary sibling file is written, flushed to disk,
/// and renamed over `path`. Parent directories are created as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    // The host name as well as the process id: on a file system shared by a cluster's nodes, two
    // processes of one id on two nodes must not write one temporary file.
    let tmp = dir.join(format!(
        ".{file_name}.tmp{}.{}",
        std::process::id(),
        host_name()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("renaming into place", path, e)
    })
}

/// Appends one line to `path` (used for `metrics.jsonl`, where each line is complete on its own).
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io("appending to", path, e))
}

/// Hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(sha256_hex(&bytes))
}

/// Rewrites a safetensors file's JSON header with its keys in sorted order. The `safetensors`
/// crate writes metadata from a hash map, whose order changes from process to process, so two
/// files with equal contents would differ in bytes (and in content hashes, which key caches).
/// The sorted header has the same length, so tensor offsets are unchanged. Bytes that are not
/// a well-formed safetensors file are returned as they are.
pub fn canonical_safetensors(mut bytes: Vec<u8>) -> Vec<u8> {
    use std::collections::BTreeMap;
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8usize.saturating_add(len)) else {
        return bytes;
    };
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(header) else {
        return bytes;
    };
    let sorted: BTreeMap<&String, serde_json::Value> = map
        .iter()
        .map(|(k, v)| {
            let v = match v.as_object() {
                Some(o) => serde_json::to_value(o.iter().collect::<BTreeMap<_, _>>())
                    .unwrap_or_else(|_| v.clone()),
                None => v.clone(),
            };
            (k, v)
        })
        .collect();
    match serde_json::to_vec(&sorted) {
        Ok(mut json) if json.len() <= len => {
            json.resize(len, b' ');
            bytes[8..8 + len].copy_from_slice(&json);
            bytes
        }
        _ => bytes,
    }
}

/// One writer per output directory: a lock file holding the writer's process id, created
/// atomically (`create_new`), removed when the lock is dropped. A lock whose process is gone
/// (killed, crashed) is taken over, and [`RunLock::took_over`] says from whom.
#[derive(Debug)]
pub struct RunLock {
    path: std::path::PathBuf,
    took_over: Option<u32>,
}

/// Name of the lock file inside an output directory.
pub const LOCK_FILE: &str = ".distill.lock";

impl RunLock {
    /// Takes the lock of `dir` (created if needed), or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut took_over = None;
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Error::io("writing", &path, e))?;
                    return Ok(RunLock { path, took_over });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_alive(pid) => {
                            return Err(Error::Locked {
                                dir: dir.to_path_buf(),
                                pid,
                            });
                        }
                        // Dead holder, or a lock file torn before its pid was written.
                        _ => {
                            took_over = holder.or(Some(0));
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io("creating", &path, e)),
            }
        }
        Err(Error::io(
            "taking the lock",
            &path,
            std::io::Error::other("the lock file keeps reappearing"),
        ))
    }

    /// The process id of a dead holder whose lock was taken over (0 if it was unreadable).
    pub fn took_over(&self) -> Option<u32> {
        self.took_over
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An exclusive advisory lock (`flock`) on a lock file, held until dropped. The kernel, or the
/// server of a network file system, releases it when its process dies, so a killed or
/// preempted writer never leaves a stale lock behind. The file names its holder (host and
/// process id) for messages, and is left in place: removing it could let two processes lock two
/// different files of one name.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock `lock` (created if needed) for writing `target`, or fails with
    /// [`Error::Busy`] naming `target` and the holder when another process holds it.
    pub fn try_acquire(lock: &Path, target: &Path) -> Result<FileLock> {
        if let Some(dir) = lock.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock)
            .map_err(|e| Error::io("opening", lock, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(lock).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => format!("it holds {}", lock.display()),
                    h => format!("{h}, holding {}", lock.display()),
                };
                return Err(Error::Busy {
                    path: target.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", lock, e)),
        }
        let me = format!("pid {} on host {}", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(|e| Error::io("writing", lock, e))?;
        Ok(FileLock { _file: file })
    }
}

/// This machine's host name (`unknown-host` where it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process with this id is running (Linux: `/proc/PID/stat`, a zombie counting as
/// gone; elsewhere assumed alive, so a lock is never stolen from a live run).
fn process_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name, which may itself hold spaces.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

/// Little-endian `f32` values from raw tensor bytes (as safetensors stores them); a trailing
/// partial value is ignored.
pub fn f32_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    #[test]
    fn safetensors_headers_come_out_in_one_order() {
        use std::collections::HashMap;
        let bytes = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let view = || {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &bytes).unwrap()
        };
        // Many metadata keys make two hash-map orders all but certain to differ somewhere.
        let meta: HashMap<String, String> = (0..32)
            .map(|i| (format!("key{i}"), format!("value{i}")))
            .collect();
        let files: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                let meta: HashMap<String, String> = meta.clone().into_iter().collect();
                let raw = safetensors::serialize([("b", view()), ("a", view())], Some(meta));
                canonical_safetensors(raw.unwrap())
            })
            .collect();
        assert!(files.windows(2).all(|w| w[0] == w[1]));
        let st = safetensors::SafeTensors::deserialize(&files[0]).unwrap();
        assert_eq!(st.tensor("a").unwrap().data(), &bytes);
        let (_, m) = safetensors::SafeTensors::read_metadata(&files[0]).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap().len(), 32);
        assert_eq!(canonical_safetensors(b"junk".to_vec()), b"junk");
    }

    #[test]
    fn one_writer_per_directory_and_dead_holders_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(lock.took_over(), None);
        // This process holds it: a second taker is refused, naming the holder.
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A lock left by a process that no longer exists is taken over.
        std::fs::write(dir.path().join(LOCK_FILE), "4194999").unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(lock.took_over(), Some(4194999));
    }

    #[test]
    fn a_file_lock_admits_one_holder_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, target) = (dir.path().join(".a.lock"), dir.path().join("a"));
        let held = FileLock::try_acquire(&lock, &target).unwrap();
        // flock: a second open file, even in this process, is a second holder and is refused.
        let e = FileLock::try_acquire(&lock, &target).unwrap_err();
        assert_eq!(e.exit_code(), 7);
        let e = e.to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains(&target.display().to_string()), "{e}");
        drop(held);
        FileLock::try_acquire(&lock, &target).unwrap();
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
