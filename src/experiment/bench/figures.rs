//! What a benchmark run is asked for and what it gives back: the figures, each the median of
//! repeats with their range, in the JSON layout `bench/compare.sh` reads.

use std::collections::BTreeMap;

use serde::Serialize;

use super::interop::InteropOptions;
use crate::eval::median;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Timed repeats per figure.
    pub reps: usize,
    /// Untimed repeats first.
    pub warmup: usize,
    /// Examples per "epoch" (55,000 = one MNIST training epoch).
    pub epoch_examples: usize,
    /// Foreign inputs to time first (an `.npz`, an ONNX teacher).
    pub interop: InteropOptions,
    /// Only these figures (names of [`FIGURES`]); all when empty.
    pub only: Vec<String>,
}

/// Median, min and max of one figure.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Figure {
    /// Median over repeats.
    pub median: f64,
    /// Fastest repeat.
    pub min: f64,
    /// Slowest repeat.
    pub max: f64,
}

/// All figures of a run, in the JSON layout `bench/compare.sh` reads.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Always "distill".
    pub implementation: String,
    /// distill and burn versions.
    pub version: String,
    /// Worker threads of the CPU pool.
    pub threads: usize,
    /// Compute backend.
    pub backend: String,
    /// CPU model and cores.
    pub machine: String,
    /// Figure name -> values (ms for steps, s for epochs, µs for latency, examples/s for
    /// throughput, MiB for memory).
    pub figures: BTreeMap<String, Figure>,
}

/// A figure from its repeats' values.
pub fn figure(mut v: Vec<f64>) -> Figure {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    Figure {
        median: median(&mut v),
        min,
        max,
    }
}

/// The figure of `f`'s values over the run's repeats, after its warm-up calls.
pub(crate) fn repeat(opts: &BenchOptions, mut f: impl FnMut() -> f64) -> Figure {
    for _ in 0..opts.warmup {
        f();
    }
    figure((0..opts.reps.max(1)).map(|_| f()).collect())
}
