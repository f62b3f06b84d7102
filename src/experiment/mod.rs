//! Stage 8, experiment: named recipes that compose the stages below. The paper's experiments
//! with their presets, temperature sweeps, summaries over seeds, and benchmarks.
//!
//! Owns: recipes and presets only. Nothing here is a building block that a command needs on its
//! own: those live in the stage that owns them.
//! May use: every stage below it (`compute` to `report`) and the foundation modules.

pub mod bench;
mod extra_rows;
pub mod grid;
mod losses;
mod presets;
mod recipes;
mod seeds_headline;
mod student;
pub mod summary;
pub mod sweep;
mod table_speed;
mod tables;

pub use bench::InteropOptions;
pub use extra_rows::{ExtraRows, RowCounts};
pub use presets::{ExperimentKind, FitToData, Preset, ReproduceConfig, ReproduceParams};
pub use recipes::{ReproduceOptions, reproduce};
pub use student::{
    Distillation, Distilled, StudentRun, distill_student, distill_students, student_report,
};
pub use tables::{TableRecipe, reproduce_table};
