//! Which build does the computing: the commit and library versions every model directory and
//! report records, so that a result can be traced to the code that made it.

/// The commit the binary was built from (stamped by `build.rs`, `-dirty` when tracked files
/// differed), not whatever the working tree holds when a run starts.
pub fn build_commit() -> &'static str {
    env!("DISTILL_GIT_COMMIT")
}

/// burn's version, pinned in `Cargo.toml`.
pub const BURN_VERSION: &str = "0.22.1";

/// Which build made something: distill's version, burn's and the commit, as every model
/// directory records it.
pub fn build_id() -> String {
    format!(
        "distill {}, burn {BURN_VERSION}, commit {}",
        env!("CARGO_PKG_VERSION"),
        build_commit()
    )
}
