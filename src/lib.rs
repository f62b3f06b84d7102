//! `distill`: knowledge distillation (Hinton, Vinyals & Dean 2015) as a library.
//!
//! Data flows one way through eight stages, each a module that uses only the stages before it
//! (`tests/it/layering.rs` checks this; `docs/architecture.md` draws it):
//!
//! [`compute`] -> [`data`] -> [`model`] -> [`distill`] -> [`train`] -> [`eval`] -> [`report`]
//! -> [`experiment`].
//!
//! [`compute`] sets up the device and threads and holds the CPU kernels; [`data`] reads
//! datasets and makes splits; [`model`] builds, stores, loads and exports networks, ensembles
//! and foreign teachers; [`distill`] holds the temperature softmax, the losses and the
//! soft-target cache; [`train`] runs the optimization loop; [`eval`] measures models;
//! [`report`] writes results and charts; [`experiment`] composes them into the paper's
//! recipes, sweeps, summaries and benchmarks. The foundation modules [`error`] and [`fsutil`]
//! serve every stage. The command line is the binary's: it parses flags, and names the
//! library's [`error::Setting`]s by them.
//!
//! # Example: a teacher, a student distilled from it, evaluated and exported
//!
//! ```
//! use std::sync::Arc;
//!
//! use distill::data::{Splits, TableOptions};
//! use distill::distill::{DistillParams, Objective, StudentInputs, distill_objective};
//! use distill::model::{Classifier, export_onnx};
//! use distill::train::{OptimizerKind, RoleParams, RunOutput, Schedule, TrainParams, train_role};
//!
//! // A small table: two features, the class is which side of a line a point lies on.
//! let dir = std::env::temp_dir().join(format!("distill-doc-lib-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut csv = String::from("x,y,side\n");
//! for i in 0..300 {
//!     let (x, y) = ((i * 37 % 101) as f32 / 101.0, (i * 53 % 97) as f32 / 97.0);
//!     csv += &format!("{x},{y},{}\n", if x + 0.5 * y > 0.7 { "above" } else { "below" });
//! }
//! std::fs::write(dir.join("points.csv"), csv)?;
//! let splits = Splits::load(&dir.join("points.csv"), &TableOptions::default(), None, None, None)?;
//! let (device, _backend) = distill::compute::compute_device();
//!
//! let role = |spec: &str| RoleParams {
//!     spec: spec.into(),
//!     input_dropout: 0.0,
//!     hidden_dropout: 0.0,
//!     train: TrainParams {
//!         epochs: 20,
//!         batch_size: 32,
//!         learning_rate: 0.01,
//!         optimizer: OptimizerKind::Adam,
//!         schedule: Schedule::Cosine,
//!         warmup_epochs: 0,
//!         jitter: 0,
//!         seed: 1,
//!         clip_norm: None,
//!         mixup: 0.0,
//!         patience: None,
//!     },
//! };
//! let out = |name: &str| RunOutput::new(&dir.join(name), name, false);
//! let teacher = train_role(&role("mlp:32,32").check()?, &splits, &Objective::Hard, &device, &out("teacher"))?;
//! let teacher = Classifier::Single(teacher.network);
//!
//! // The paper's loss at T = 2: soft targets cached once, then the student learns from them.
//! let kd = DistillParams { temperature: 2.0, alpha: 0.9 }.check()?;
//! let (objective, _note) = distill_objective(
//!     &teacher,
//!     &dir.join("teacher"),
//!     StudentInputs::Plain,
//!     &splits.train,
//!     Arc::new(kd),
//!     &dir.join("cache"),
//!     &device,
//! )?;
//! let student = train_role(&role("mlp:4").check()?, &splits, &objective, &device, &out("student"))?;
//!
//! let e = distill::eval::evaluate(&student.network, &splits.test, 2, &device)?;
//! assert!(e.errors < splits.test.len() / 4, "{} errors", e.errors);
//! let onnx = export_onnx(&student.network); // input `features` [batch, 2], output `logits`
//! assert!(!onnx.is_empty());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod compute;
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
