//! `distill`: knowledge distillation (Hinton, Vinyals & Dean 2015) as a library.
//!
//! Data flows one way through eight stages, each a module that uses only the stages before it
//! (`tests/it/layering.rs` checks this; `docs/architecture.md` draws it):
//!
//! [`data`] -> [`model`] -> [`distill`] -> [`train`] -> [`eval`] -> [`report`] ->
//! [`experiment`] -> [`cli`].
//!
//! [`data`] reads datasets and makes splits; [`model`] builds, stores and loads networks and
//! ensembles; [`distill`] holds the temperature softmax, the losses and teacher soft targets;
//! [`train`] runs the optimization loop; [`eval`] measures models; [`report`] writes results
//! and charts; [`experiment`] composes them into the paper's recipes, sweeps, summaries and
//! benchmarks; [`cli`] parses the command line. The foundation modules [`error`], [`fsutil`]
//! and [`backend`] serve every stage.
#![warn(missing_docs)]

pub mod backend;
pub mod cli;
pub mod data;
pub mod distill;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod fsutil;
pub mod model;
pub mod report;
pub mod train;

pub use error::{Error, Result};
