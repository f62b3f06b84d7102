//! The integration tests, one binary: each file below is a module of it. One binary builds and
//! links once instead of eleven times, and its tests share the runner's threads, so a long test
//! in one file no longer leaves the other core idle.

mod common;

mod circles;
mod claims;
mod cli;
mod cnn;
mod errors;
mod errors_tables;
mod exporters;
mod formats;
mod fuzz;
mod ladder;
mod layering;
mod learning;
mod losses;
mod messages;
mod onnx;
mod recipes;
mod report_page;
mod resume;
mod scripts;
mod shards;
mod slurm;
mod tables;
mod trees;
mod trust;
