//! Batch normalization in training (the batch's own statistics), forward and backward, as one
//! operation of the CPU backend.
//!
//! burn 0.22 differentiates batch norm as one operation, but its CPU backend computes it from
//! generic tensor operations: a transposed copy of the activations for each statistic, then
//! half a dozen element-wise passes forward and as many backward, a large share of a CNN's
//! training step in a profile (`docs/speed.md`).
//! Here the statistics are one read of the activations per channel, summed in f64, and each
//! direction is one pass over them more. The running statistics are updated as burn's
//! `BatchNorm` updates them.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use rayon::prelude::*;

use super::{dims, tensor, values};

/// Batch statistics and normalization as backend operations.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait NormOps: Backend {
    /// Each channel's mean and biased variance over the batch and positions of `x`
    /// `[n, c, h, w]`, as `[2, c]`; a constant, with no gradient.
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x` normalized by its own batch statistics `stats` (as [`NormOps::batch_stats`] gives
    /// them), then scaled by `gamma` and shifted by `beta`. The gradient is that of batch
    /// norm in training: it flows through the statistics as well.
    fn batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// Applies `bn` to `x`: in training on the CPU through the fused operations, updating the
/// running statistics as burn's `BatchNorm::forward` does; otherwise through burn's.
pub(crate) fn batch_norm_layer(x: Tensor<4>, bn: &BatchNorm) -> Tensor<4> {
    let device = x.device();
    if cfg!(feature = "cuda") || !(device.is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let [_, c, _, _] = x.dims();
    let stats: Tensor<2> = Tensor::from_dispatch(<Dispatch as NormOps>::batch_stats(
        x.clone().into_dispatch(),
    ));
    let stat = |i: usize| stats.clone().slice([i..i + 1, 0..c]).reshape([c]);
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - bn.momentum)
            .add(batch.mul_scalar(bn.momentum))
            .detach()
    };
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), stat(0)));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), stat(1)));
    Tensor::from_dispatch(<Dispatch as NormOps>::batch_norm(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        stats.into_dispatch(),
        bn.epsilon,
    ))
}

/// Image `i`'s plane of channel `ch` in `v` (`[n, c, hw]`).
fn plane(v: &[f32], [_, c, hw]: [usize; 3], i: usize, ch: usize) -> &[f32] {
    &v[(i * c + ch) * hw..][..hw]
}

/// `f(ch)` for every channel, in parallel. Each channel's sums run over its planes in image
/// order, so they are the same on any number of threads.
fn per_channel<T: Send>(c: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..c).into_par_iter().map(f).collect()
}

/// Each channel's (mean, biased variance) over the batch, summed in f64, two passes.
fn stats_of(x: &[f32], shape: [usize; 3]) -> Vec<(f64, f64)> {
    let [n, c, hw] = shape;
    let count = (n * hw).max(1) as f64;
    per_channel(c, |ch| {
        let planes = || (0..n).map(|i| plane(x, shape, i, ch));
        let sum: f64 = planes().flatten().map(|&v| v as f64).sum();
        let mean = sum / count;
        let sq: f64 = planes().flatten().map(|&v| (v as f64 - mean).powi(2)).sum();
        (mean, sq / count)
    })
}

/// Runs `f(channel, plane)` on every plane of `out` (`[n, c, hw]`), images in parallel.
fn each_plane(
    out: &mut [f32],
    [_, c, hw]: [usize; 3],
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    if hw * c == 0 {
        return;
    }
    out.par_chunks_mut(c * hw)
        .enumerate()
        .for_each(|(i, image)| {
            for (ch, out) in image.chunks_exact_mut(hw).enumerate() {
                f(i, ch, out);
            }
        });
}

fn shape3(x: &FlexTensor) -> [usize; 3] {
    let [n, c, h, w] = dims::<4>(x);
    [n, c, h * w]
}

impl NormOps for Flex {
    fn batch_stats(x: FlexTensor) -> FlexTensor {
        let shape = shape3(&x);
        let stats = stats_of(&values(&x), shape);
        let (means, vars): (Vec<f32>, Vec<f32>) =
            stats.iter().map(|&(m, v)| (m as f32, v as f32)).unzip();
        tensor([means, vars].concat(), [2, shape[1]])
    }

    fn batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let [n, c, hw] = shape3(&x);
        let (xv, gv, bv, sv) = (values(&x), values(&gamma), values(&beta), values(&stats));
        assert!(
            gv.len() == c && bv.len() == c && sv.len() == 2 * c,
            "batch norm: per channel"
        );
        // y = x · scale + shift, with scale = γ / sqrt(var + ε) and shift = β − mean · scale.
        let coefficients: Vec<(f32, f32)> = (0..c)
            .map(|ch| {
                let scale = gv[ch] as f64 / (sv[c + ch] as f64 + epsilon).sqrt();
                (scale as f32, (bv[ch] as f64 - sv[ch] as f64 * scale) as f32)
            })
            .collect();
        let mut out = xv.into_owned();
        each_plane(&mut out, [n, c, hw], |_, ch, out| {
            let (scale, shift) = coefficients[ch];
            out.iter_mut().for_each(|v| *v = *v * scale + shift);
        });
        let [_, _, h, w] = dims::<4>(&x);
        tensor(out, [n, c, h, w])
    }
}

/// The backward step of [`NormOps::batch_norm`] on the CPU backend.
#[derive(Debug)]
struct NormBackward;

/// What the backward step keeps: the input and γ (as checkpointed nodes), the statistics and ε.
type NormState = (NodeId, NodeId, FlexTensor, f64);

impl Backward<Flex, 4> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, 4>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node, _] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, gamma_id, stats, epsilon) = ops.state;
        let x: FlexTensor = cp.retrieve_node_output(x_id);
        let gamma: FlexTensor = cp.retrieve_node_output(gamma_id);
        let [n, c, hw] = shape3(&x);
        let (xv, gv, sv, dy) = (values(&x), values(&gamma), values(&stats), values(&grad));
        let inv: Vec<f64> = (0..c)
            .map(|ch| 1.0 / (sv[c + ch] as f64 + epsilon).sqrt())
            .collect();
        // Per channel: Σ dy (β's gradient) and Σ dy · x̂ (γ's), x̂ = (x − mean) · inv.
        let shape = [n, c, hw];
        let sums: Vec<(f64, f64)> = per_channel(c, |ch| {
            let (mean, inv) = (sv[ch] as f64, inv[ch]);
            let (mut s, mut sx) = (0f64, 0f64);
            for i in 0..n {
                for (&g, &x) in plane(&dy, shape, i, ch)
                    .iter()
                    .zip(plane(&xv, shape, i, ch))
                {
                    s += g as f64;
                    sx += g as f64 * (x as f64 - mean) * inv;
                }
            }
            (s, sx)
        });
        if let Some(node) = x_node {
            // dx = γ · inv · (dy − Σdy / N − x̂ · Σ(dy·x̂) / N).
            let count = (n * hw).max(1) as f64;
            let mut dx = dy.to_vec();
            each_plane(&mut dx, shape, |i, ch, out| {
                let (mean, inv, (s, sx)) = (sv[ch] as f64, inv[ch], sums[ch]);
                let scale = gv[ch] as f64 * inv;
                for (d, &x) in out.iter_mut().zip(plane(&xv, shape, i, ch)) {
                    let xhat = (x as f64 - mean) * inv;
                    *d = (scale * (*d as f64 - s / count - xhat * sx / count)) as f32;
                }
            });
            let [_, _, h, w] = dims::<4>(&x);
            grads.register::<Flex>(node.id, tensor(dx, [n, c, h, w]));
        }
        let channel = |pick: fn(&(f64, f64)) -> f64| {
            tensor(sums.iter().map(|s| pick(s) as f32).collect(), [c])
        };
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, channel(|s| s.1));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, channel(|s| s.0));
        }
    }
}

impl<C: CheckpointStrategy> NormOps for Autodiff<Flex, C> {
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(Flex::batch_stats(x.primitive().clone()))
    }

    fn batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let prep = NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node(), stats.node()])
            .compute_bound()
            .stateful();
        let s = stats.primitive().clone();
        let run = |x: &FloatTensor<Self>, g: &FloatTensor<Self>, b: FloatTensor<Self>| {
            let (x, g) = (x.primitive().clone(), g.primitive().clone());
            Flex::batch_norm(x, g, b.into_primitive(), s.clone(), epsilon)
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let (x_id, gamma_id) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let y = run(&x, &gamma, beta);
                prep.finish((x_id, gamma_id, s, epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(&x, &gamma, beta)),
        }
    }
}

#[cfg(test)]
mod tests;
