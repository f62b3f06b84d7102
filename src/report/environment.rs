//! Where and with what a run was made: hardware, backend, versions and the commit the binary was
//! built from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where and with what a run was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// CPU model and core count, or the GPU.
    pub hardware: String,
    /// Compute backend.
    pub backend: String,
    /// Git commit the binary was built from (with `-dirty` if tracked files differed), or "unknown".
    pub git_commit: String,
    /// Versions of distill and burn.
    pub versions: BTreeMap<String, String>,
    /// Operating system and architecture.
    pub os: String,
    /// Worker threads of the CPU pool (`--threads`), which training times and batch-1 latency
    /// depend on; 0 in reports written before it was recorded.
    #[serde(default)]
    pub threads: usize,
    /// Whether subnormal floats were flushed to zero (`DISTILL_DENORMALS`), which changes
    /// results; absent in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_denormals: Option<bool>,
}

impl Environment {
    /// Describes the current process's environment for the given backend.
    pub fn detect(backend: &str) -> Environment {
        let mut versions = BTreeMap::new();
        versions.insert("distill".into(), env!("CARGO_PKG_VERSION").into());
        versions.insert("burn".into(), crate::compute::BURN_VERSION.into());
        Environment {
            hardware: hardware(),
            backend: backend.into(),
            git_commit: crate::compute::build_commit().to_string(),
            versions,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            threads: rayon::current_num_threads(),
            flush_denormals: Some(crate::compute::flushes_denormals()),
        }
    }
}

fn hardware() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores")
}
