//! Resumable training: at the end of an epoch (every epoch, or one every
//! `Checkpoints::every_seconds`) a run leaves, beside its weights, what it needs to continue
//! exactly where it stopped (the optimizer's state and the identities of the parameters it
//! belongs to, the epoch, the elapsed time). The random streams need no saving: each epoch seeds
//! its own (see `RngStream::epoch_seed`), so a resumed run ends bit-identical to an
//! uninterrupted one.
//!
//! Files live in `DIR/resume/`: `epoch-N.safetensors` and `epoch-N.optim` are written first,
//! then `state.json` (atomically) points at them, then the previous checkpoint's pair is
//! removed. A kill at any moment leaves `state.json` pointing at a complete pair.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Setting};
use crate::fsutil::{sha256_file, sha256_hex, write_atomic, write_json};
use crate::model::Network;

/// Folder of the resumable state inside a model directory.
pub const RESUME_DIR: &str = "resume";

/// What `state.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Identifies the run (settings, architecture, data): only the same run may resume.
    pub run: String,
    /// Last finished epoch (1-based).
    pub epoch: usize,
    /// Training seconds spent up to the end of that epoch.
    pub elapsed_seconds: f64,
    /// Parameter identities, in visiting order, that the optimizer's state is keyed by.
    pub param_ids: Vec<u64>,
    /// SHA-256 of `epoch-N.safetensors`.
    pub weights_sha256: String,
    /// SHA-256 of `epoch-N.optim`.
    pub optimizer_sha256: String,
}

impl ResumeState {
    fn weights(dir: &Path, epoch: usize) -> PathBuf {
        dir.join(RESUME_DIR)
            .join(format!("epoch-{epoch}.safetensors"))
    }

    /// Path of the optimizer state of `epoch` in model directory `dir`.
    pub fn optimizer(dir: &Path, epoch: usize) -> PathBuf {
        dir.join(RESUME_DIR).join(format!("epoch-{epoch}.optim"))
    }

    fn state(dir: &Path) -> PathBuf {
        dir.join(RESUME_DIR).join("state.json")
    }
}

/// An identity for a run: its settings, architecture and data, hashed.
pub fn run_identity(parts: &impl Serialize) -> String {
    sha256_hex(serde_json::to_string(parts).unwrap_or_default().as_bytes())
}

/// Records the end of `epoch`: the network, the optimizer state already written to
/// [`ResumeState::optimizer`], then `state.json`; then drops earlier checkpoints' files.
pub fn save_epoch(
    dir: &Path,
    run: &str,
    epoch: usize,
    elapsed_seconds: f64,
    network: &Network,
    param_ids: Vec<u64>,
) -> Result<()> {
    let weights = ResumeState::weights(dir, epoch);
    write_atomic(&weights, &network.to_bytes()?)?;
    let state = ResumeState {
        run: run.to_string(),
        epoch,
        elapsed_seconds,
        param_ids,
        weights_sha256: sha256_file(&weights)?,
        optimizer_sha256: sha256_file(&ResumeState::optimizer(dir, epoch))?,
    };
    write_json(&ResumeState::state(dir), &state)?;
    // Checkpoints may skip epochs, so the earlier pair is found by listing, not by number.
    let keep = [
        ResumeState::weights(dir, epoch),
        ResumeState::optimizer(dir, epoch),
    ];
    if let Ok(entries) = std::fs::read_dir(dir.join(RESUME_DIR)) {
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("epoch-") && !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(())
}

/// The state to resume `run` from in `dir`, with its network loaded onto `device`: `None` when
/// there is none; an error when there is one of another run, or a damaged one.
pub fn load(
    dir: &Path,
    run: &str,
    device: &burn::tensor::Device,
) -> Result<Option<(ResumeState, Network)>> {
    let path = ResumeState::state(dir);
    if !path.exists() {
        return Ok(None);
    }
    let bad = |reason: String| Error::Checkpoint {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let state: ResumeState =
        serde_json::from_str(&text).map_err(|e| bad(format!("does not parse ({e})")))?;
    if state.run != run {
        return Err(bad(format!(
            "it was written by a different run (its settings, model or data differ); \
             remove the resume folder or give another {}",
            Setting::Out
        )));
    }
    let weights = ResumeState::weights(dir, state.epoch);
    let optimizer = ResumeState::optimizer(dir, state.epoch);
    for (file, sha) in [
        (&weights, &state.weights_sha256),
        (&optimizer, &state.optimizer_sha256),
    ] {
        if !file.exists() || sha256_file(file)? != *sha {
            return Err(bad(format!(
                "{} is missing or does not match its recorded SHA-256",
                file.display()
            )));
        }
    }
    let bytes = std::fs::read(&weights).map_err(|e| Error::io("reading", &weights, e))?;
    let network = Network::from_bytes(&bytes, device).map_err(bad)?;
    Ok(Some((state, network)))
}

/// Removes the resumable state of `dir`: `state.json` first, so that a kill half-way through
/// never leaves it pointing at removed files.
pub fn clear(dir: &Path) -> Result<()> {
    let state = ResumeState::state(dir);
    if let Err(e) = std::fs::remove_file(&state)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(Error::io("removing", &state, e));
    }
    let p = dir.join(RESUME_DIR);
    match std::fs::remove_dir_all(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", &p, e)),
        _ => Ok(()),
    }
}
