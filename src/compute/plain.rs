//! A plain forward pass of an MLP for one image at a time on the CPU: the serving path.
//!
//! At batch 1 a tensor library spends most of its time on per-operation dispatch, allocation
//! and waking the thread pool, not on arithmetic (the student's three matrix products are about
//! 1.3 million multiply-adds, tens of microseconds of work). This path keeps the weights as host
//! arrays and runs each layer as a sequence of row updates, skipping inputs that are zero (most
//! pixels of a digit, and about half of every ReLU layer's outputs). A large layer's columns
//! are split between the caller and spinning helper threads ([`team`]). It gives the network's
//! logits up to float rounding: the sums are taken in another order, the same for any number
//! of threads.

mod team;

use std::ops::Range;
use std::sync::Arc;

use super::wide::wide;
use crate::error::{Error, Result};

/// One fully connected layer on the host.
#[derive(Debug, Clone)]
struct HostLayer {
    /// `[inputs, outputs]`, row-major: row `i` holds input `i`'s weights to every output.
    weight: Vec<f32>,
    /// `[outputs]`.
    bias: Vec<f32>,
    /// Whether a ReLU follows (every layer but the logits).
    relu: bool,
}

impl HostLayer {
    fn outputs(&self) -> usize {
        self.bias.len()
    }
}

/// A layer's non-zero inputs with their indices: the weight rows to add.
type Input = Vec<(f32, usize)>;

/// The non-zero entries of `x`. Zero inputs add nothing (the weights are finite after any
/// successful training).
fn nonzero(x: &[f32]) -> Input {
    x.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, &v)| (v, i))
        .collect()
}

/// Multiply-adds below which a layer is not split: the hand-off to a spinning helper (under a
/// microsecond) should be small beside the half it takes. The logits layer (a few thousand)
/// stays whole; the paper's hidden layers (over 100,000 each) split.
const SPLIT_MIN: usize = 1 << 15;

/// The most threads one image's layers are split over. Parts under a few blocks of columns
/// each cost more in hand-offs than they save; only 2 threads were measured (`docs/speed.md`).
const MAX_THREADS: usize = 4;

/// An MLP's weights on the host, for [`PlainMlp::logits`].
#[derive(Debug, Clone)]
pub struct PlainMlp {
    layers: Arc<[HostLayer]>,
    inputs: usize,
    threads: usize,
}

impl PlainMlp {
    /// Takes an MLP's layers, input side first, each as its weight (`[inputs, outputs]`,
    /// row-major) and bias, to run on as many threads as the current thread pool has, at most
    /// one per core and 4 in all; `None` for no layers. (Helpers spin: more of them than
    /// cores would take the cores from the caller.)
    pub fn new(layers: Vec<(Vec<f32>, Vec<f32>)>) -> Option<PlainMlp> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(layers, rayon::current_num_threads().min(cores))
    }

    /// As [`PlainMlp::new`], on at most `threads` threads, the caller's included. A network
    /// with no layer large enough to split runs on the caller's alone.
    pub fn with_threads(layers: Vec<(Vec<f32>, Vec<f32>)>, threads: usize) -> Option<PlainMlp> {
        let count = layers.len();
        let layers: Arc<[HostLayer]> = layers
            .into_iter()
            .enumerate()
            .map(|(i, (weight, bias))| HostLayer {
                weight,
                bias,
                relu: i + 1 < count,
            })
            .collect();
        let first = layers.first()?;
        let inputs = first.weight.len() / first.outputs().max(1);
        let splits = layers.iter().any(|l| l.weight.len() >= SPLIT_MIN);
        let threads = if splits {
            threads.clamp(1, MAX_THREADS)
        } else {
            1
        };
        Some(PlainMlp {
            layers,
            inputs,
            threads,
        })
    }

    /// Values per image the network takes (`C * H * W`).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Threads a large layer is split over, the caller's included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Logits for one image of `C * H * W` values in `[0, 1]`, as the network's forward pass in
    /// inference gives them.
    pub fn logits(&self, image: &[f32]) -> Result<Vec<f32>> {
        if image.len() != self.inputs {
            return Err(Error::config(format!(
                "the network takes {} values per image, got {}",
                self.inputs,
                image.len()
            )));
        }
        // A caller that finds the team serving another thread runs alone.
        let mut team = if self.threads > 1 {
            team::try_team()
        } else {
            None
        };
        let mut x = image.to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            let input = nonzero(&x);
            let n = layer.outputs();
            x = match team.as_deref_mut() {
                Some(team) if input.len() * n >= SPLIT_MIN => {
                    let parts = self.threads.min(n.div_ceil(BLOCK));
                    team.layer(&self.layers, i, Arc::new(input), parts)
                }
                _ => {
                    let mut y = vec![0.0; n];
                    dense_part(&input, layer, 0..n, &mut y);
                    y
                }
            };
        }
        Ok(x)
    }
}

/// Output columns summed in registers at a time: 4 AVX-512 vectors. Blocks of 32, 128 and 256
/// were all slower (`docs/speed.md`).
const BLOCK: usize = 64;

/// Columns of part `p` of `parts` of a layer with `outputs` columns: whole blocks of
/// [`BLOCK`], the last part taking the tail.
fn part_range(outputs: usize, parts: usize, p: usize) -> Range<usize> {
    let blocks = outputs.div_ceil(BLOCK);
    let edge = |p: usize| (p * blocks / parts.max(1) * BLOCK).min(outputs);
    edge(p)..edge(p + 1)
}

/// Columns `cols` of `relu?(x · W + b)` into `out`, adding one weight row per non-zero input.
/// Reading the weights is the cost. Each block of [`BLOCK`] outputs is summed in registers
/// over all the non-zero inputs before the next, so the outputs are not loaded and stored
/// again for every input row. Every output is still the bias plus the products in the order
/// of the inputs, so the values are the row-by-row loop's bits. `cols.start` is a multiple of
/// [`BLOCK`].
fn dense_part(input: &[(f32, usize)], layer: &HostLayer, cols: Range<usize>, out: &mut [f32]) {
    let n = layer.outputs();
    let row = |i: usize, c: usize, w: usize| &layer.weight[i * n + c..][..w];
    out.copy_from_slice(&layer.bias[cols.clone()]);
    let whole = cols.len() / BLOCK * BLOCK;
    let (blocks, tail) = out.split_at_mut(whole);
    wide(|| {
        for (b, out) in blocks.chunks_exact_mut(BLOCK).enumerate() {
            let c = cols.start + b * BLOCK;
            let mut acc: [f32; BLOCK] = (&*out).try_into().unwrap_or([0.0; BLOCK]);
            for &(xi, i) in input {
                let w: &[f32; BLOCK] = row(i, c, BLOCK).try_into().unwrap_or(&[0.0; BLOCK]);
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += xi * w;
                }
            }
            out.copy_from_slice(&acc);
        }
    });
    let rest = tail.len();
    for &(xi, i) in input {
        for (yj, &w) in tail.iter_mut().zip(row(i, cols.start + whole, rest)) {
            *yj += xi * w;
        }
    }
    if layer.relu {
        out.iter_mut().for_each(|v| *v = v.max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_layer_gives_the_row_loops_bits_in_any_split() {
        // Widths with and without a tail after the last whole block; a third of inputs zero.
        for (inputs, outputs) in [(70, 200), (33, 128), (5, 7), (9, 800)] {
            let value = |i: usize| ((i as f32) * 0.618_034).sin();
            let x: Vec<f32> = (0..inputs)
                .map(|i| if i % 3 == 0 { 0.0 } else { value(i + 11) })
                .collect();
            for relu in [false, true] {
                let layer = HostLayer {
                    weight: (0..inputs * outputs).map(value).collect(),
                    bias: (0..outputs).map(|i| value(i + 7) * 0.1).collect(),
                    relu,
                };
                let mut want = layer.bias.clone();
                for (&xi, row) in x.iter().zip(layer.weight.chunks_exact(outputs)) {
                    for (yj, &w) in want.iter_mut().zip(row) {
                        *yj += xi * w;
                    }
                }
                if relu {
                    want.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                for parts in 1..=4 {
                    let mut got = vec![f32::NAN; outputs];
                    for p in 0..parts {
                        let cols = part_range(outputs, parts, p);
                        assert_eq!(cols.start % BLOCK, 0);
                        dense_part(&nonzero(&x), &layer, cols.clone(), &mut got[cols]);
                    }
                    assert_eq!(bits(&got), bits(&want), "{inputs}x{outputs} in {parts}");
                }
            }
        }
    }
}
