//! A 2×2 max-pool (stride 2, no padding) followed by a ReLU, forward and backward, as one
//! operation of the CPU backend.
//!
//! burn-flex's max-pool returns each window's argmax as an integer tensor, and its backward
//! step scatters through those indices into a new zeroed tensor; once the convolutions were
//! fused, that scatter was the largest part of a CNN teacher's step (`docs/speed.md`).
//! Here the forward pass keeps one byte per output (which of the four inputs won, or that the
//! ReLU stopped it), and the backward step writes each gradient to its one input: the windows
//! do not overlap, so nothing is added. The values are burn's: the maximum of each window (the
//! first of equal maxima), then `max(0, ·)`.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use rayon::prelude::*;

use super::{dims, tensor, values};

/// The code of an output the ReLU stopped: no input receives its gradient.
const STOPPED: u8 = 4;

/// The fused pool and ReLU as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait PoolOps: Backend {
    /// `relu(max_pool_2x2(x))` for `x` `[n, c, h, w]`: `[n, c, h / 2, w / 2]`.
    fn pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `relu(pool(x))`: fused where `pool` is the 2×2, stride-2, unpadded max-pool the CNNs build,
/// burn's composition otherwise.
pub(crate) fn pool_relu(x: Tensor<4>, pool: &MaxPool2d) -> Tensor<4> {
    let plain = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && pool.padding == PaddingConfig2d::Valid;
    match plain && !cfg!(feature = "cuda") {
        true => Tensor::from_dispatch(<Dispatch as PoolOps>::pool_relu(x.into_dispatch())),
        false => relu(pool.forward(x)),
    }
}

/// A window's `relu(max)` and its code: the first of its largest values, in row-major order,
/// as a scan with `>` finds it, or [`STOPPED`]. Written as selects, not branches: on real
/// activations which input wins is random, and a branch on it mispredicts often enough to
/// double the pool's share of a CNN teacher's step (`docs/speed.md`).
#[inline(always)]
fn pick([a, b]: [f32; 2], [c, d]: [f32; 2]) -> (f32, u8) {
    let (top, i) = if b > a { (b, 1) } else { (a, 0) };
    let (bottom, j) = if d > c { (d, 3) } else { (c, 2) };
    let (v, k) = if bottom > top { (bottom, j) } else { (top, i) };
    if v > 0.0 { (v, k) } else { (0.0, STOPPED) }
}

/// The pooled values and, per output, which input of its window won (0 to 3, row-major) or
/// [`STOPPED`].
fn forward(x: &[f32], [n, c, h, w]: [usize; 4]) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; n * c * oh * ow];
    let mut won = vec![STOPPED; out.len()];
    if !out.is_empty() {
        out.par_chunks_mut(oh * ow)
            .zip(won.par_chunks_mut(oh * ow))
            .zip(x.par_chunks(h * w))
            .for_each(|((out, won), plane)| {
                for oy in 0..oh {
                    let (top, bottom) = (&plane[2 * oy * w..], &plane[(2 * oy + 1) * w..]);
                    let (out, won) = (&mut out[oy * ow..][..ow], &mut won[oy * ow..][..ow]);
                    for (ox, (out, won)) in out.iter_mut().zip(won.iter_mut()).enumerate() {
                        (*out, *won) = pick(
                            [top[2 * ox], top[2 * ox + 1]],
                            [bottom[2 * ox], bottom[2 * ox + 1]],
                        );
                    }
                }
            });
    }
    (out, won)
}

impl PoolOps for Flex {
    fn pool_relu(x: FlexTensor) -> FlexTensor {
        let [n, c, h, w] = dims::<4>(&x);
        let (out, _) = forward(&values(&x), [n, c, h, w]);
        tensor(out, [n, c, h / 2, w / 2])
    }
}

/// The backward step of [`PoolOps::pool_relu`] on the CPU backend.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    /// The input's shape and each output's winner.
    type State = ([usize; 4], Vec<u8>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let Some(node) = x_node else {
            return;
        };
        let ([n, c, h, w], won) = ops.state;
        let (oh, ow) = (h / 2, w / 2);
        let gv = values(&grad);
        let mut dx = vec![0f32; n * c * h * w];
        if oh * ow > 0 {
            dx.par_chunks_mut(h * w)
                .zip(gv.par_chunks(oh * ow).zip(won.par_chunks(oh * ow)))
                .for_each(|(plane, (g, won))| {
                    for oy in 0..oh {
                        let (top, bottom) = plane[2 * oy * w..].split_at_mut(w);
                        let rows = g[oy * ow..][..ow].iter().zip(&won[oy * ow..][..ow]);
                        // One write per window, into a zeroed plane: the winner's gradient,
                        // or a zero over the first input when the ReLU stopped it; no branch
                        // on which won.
                        for (ox, (&g, &k)) in rows.enumerate() {
                            let (k, g) = if k == STOPPED {
                                (0, 0.0)
                            } else {
                                (k as usize, g)
                            };
                            let line = if k < 2 { &mut *top } else { &mut *bottom };
                            line[2 * ox + k % 2] = g;
                        }
                    }
                });
        }
        grads.register::<Flex>(node.id, tensor(dx, [n, c, h, w]));
    }
}

impl<C: CheckpointStrategy> PoolOps for Autodiff<Flex, C> {
    fn pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let v = x.primitive().clone();
                let shape = dims::<4>(&v);
                let (out, won) = forward(&values(&v), shape);
                let [n, c, h, w] = shape;
                prep.finish((shape, won), tensor(out, [n, c, h / 2, w / 2]))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::pool_relu(x.primitive().clone())),
        }
    }
}

#[cfg(test)]
mod tests;
