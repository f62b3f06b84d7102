//! `distill`: knowledge distillation (Hinton, Vinyals & Dean 2015) as a library.
//!
//! Data flows one way through the modules: [`data`] reads and batches datasets, [`model`]
//! builds and stores networks and ensembles, [`distill`] holds the temperature softmax, the
//! distillation loss and cached teacher soft targets, [`train`] runs the optimization loop,
//! [`eval`] measures models, [`report`] and [`plot`] write results, and [`experiment`] and
//! [`sweep`] compose them into the paper's experiments, [`summary`] gathers runs over seeds.
//! [`bench`] times the same code paths, [`backend`] picks the compute device. The `distill`
//! binary only parses arguments ([`cli`]) and calls into these.
#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod distill;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod fsutil;
pub mod model;
pub mod plot;
pub mod report;
pub mod summary;
pub mod sweep;
pub mod train;

pub use error::{Error, Result};
