//! A dense layer — matrix product, bias, ReLU and dropout mask — as one operation of the CPU
//! backend, forward and backward, through burn's backend-extension mechanism.
//!
//! Composed from burn's primitives, a hidden layer's step is a matrix product whose result
//! burn-flex allocates zeroed and then copies to re-align, a bias add, a ReLU, a mask multiply,
//! and in the backward pass as many element-wise passes again; those passes ran on the calling
//! thread while the rest of the pool waited. Here the product is written once into its own buffer,
//! unzeroed, and bias, ReLU and mask are one pass over it; the backward pass turns the output
//! gradient into the pre-activation gradient in one pass and runs the two products straight
//! from it, at the same time, each on half of the pool. Each pass is split over the pool only
//! where that measured faster. The values are burn's: the same products summed in the same
//! order, the bias added after the product as burn adds it, and the same masks.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor, TensorData};

use super::mask::{MaskDraw, par_chunks};
use super::wide::wide;

// The CNNs' other stages, fused the same way: the 3×3 convolution, batch norm in training, and
// the 2×2 max-pool with the ReLU after it.
mod conv;
mod norm;
mod pool;
mod product;
pub(crate) use conv::conv_layer;
pub(crate) use norm::batch_norm_layer;
pub(crate) use pool::pool_relu;
#[cfg(test)]
use product::PARALLEL_WORK;
use product::{Epilogue, Split, input_gradient, product, product_then};

/// Multiply-adds above which the backward step's two products run side by side on the pool,
/// each on its own thread, though neither is large enough to split.
const SIDE_BY_SIDE: usize = 1 << 18;

/// What follows a dense layer's product and bias. A dropout mask only ever follows a ReLU,
/// which is what lets the backward step recover it from the output instead of storing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum After {
    /// Nothing: the logits layer.
    Nothing,
    /// A ReLU, then the mask when there is one (training with dropout).
    Relu(Option<MaskDraw>),
}

impl After {
    /// A hidden layer's: ReLU, then `drop`'s mask if any. The last layer's: nothing.
    pub(crate) fn hidden(hidden: bool, drop: Option<MaskDraw>) -> After {
        match hidden {
            true => After::Relu(drop),
            false => After::Nothing,
        }
    }
}

/// The fused dense layer as a backend operation: `x · w + b`, then what `after` says.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait DenseOps: Backend {
    /// One layer's output for `x` `[m, k]`, weights `w` `[k, n]` and bias `b` `[n]`.
    fn dense(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        after: After,
    ) -> FloatTensor<Self>;
}

/// Applies `layer` to `x`, then what `after` says. The layers of MLPs and of CNN heads go
/// through here on the CPU backend (a GPU build keeps burn's composition).
pub(crate) fn dense_layer(x: Tensor<2>, layer: &Linear, after: After) -> Tensor<2> {
    let Some(bias) = layer.bias.as_ref().map(|b| b.val()) else {
        return dense_layer_composed(x, layer, after);
    };
    let out = <Dispatch as DenseOps>::dense(
        x.into_dispatch(),
        layer.weight.val().into_dispatch(),
        bias.into_dispatch(),
        after,
    );
    Tensor::from_dispatch(out)
}

/// The same layer from burn's own operations: the reference the fused one is tested and timed
/// against.
pub(crate) fn dense_layer_composed(x: Tensor<2>, layer: &Linear, after: After) -> Tensor<2> {
    let z = layer.forward(x);
    let After::Relu(drop) = after else {
        return z;
    };
    let y = relu(z);
    match drop {
        Some(d) => {
            let shape = y.shape();
            let mask = d.values(shape.num_elements());
            let device = y.device();
            y * Tensor::<2>::from_data(TensorData::new(mask, shape), &device)
        }
        None => y,
    }
}

/// A float tensor's values in row-major order, copied only when its layout is not already so.
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    assert_eq!(t.dtype(), DType::F32, "the fused dense layer runs in f32");
    match t.as_slice::<f32>() {
        Some(s) => s.into(),
        // Empty if even the copy were not dense; the size checks before each product refuse it.
        None => (t.to_contiguous().as_slice::<f32>())
            .map(<[f32]>::to_vec)
            .unwrap_or_default()
            .into(),
    }
}

/// A tensor's shape, for the fused operations, which take tensors of a fixed rank.
fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), D, "a fused operation takes {D}-d tensors");
    std::array::from_fn(|i| shape[i])
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Elements below which a cheap element-wise pass (a bias and ReLU, the ReLU's gradient) runs
/// on the calling thread: at training's batch sizes such a pass is so short that handing it to
/// the pool costs more than the pass itself (`docs/speed.md`).
const CHEAP_SERIAL: usize = 1 << 18;

/// Runs `f(start, chunk)` over `values` on this thread when they are few enough for the pass to
/// be cheap, else in parallel chunks.
fn cheap_pass(values: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if values.len() < CHEAP_SERIAL {
        f(0, values);
    } else {
        par_chunks(values, f);
    }
}

/// Calls `f(piece, column)` on the pieces of `chunk` (elements from `start` of a row-major
/// matrix with `n` columns) that lie within one row, with the column of each piece's start.
fn for_rows(start: usize, chunk: &mut [f32], n: usize, mut f: impl FnMut(&mut [f32], usize)) {
    let mut col = start % n;
    let mut rest = chunk;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at_mut((n - col).min(rest.len()));
        f(piece, col);
        rest = tail;
        col = 0;
    }
}

impl DenseOps for Flex {
    fn dense(x: FlexTensor, w: FlexTensor, b: FlexTensor, after: After) -> FlexTensor {
        let ([m, k], [k2, n]) = (dims(&x), dims(&w));
        assert_eq!(k, k2, "dense layer: input width against weight rows");
        let (xv, wv, bv) = (values(&x), values(&w), values(&b));
        assert_eq!(bv.len(), n, "dense layer: one bias per output");
        let threads = rayon::current_num_threads();
        let (relu, draw) = match after {
            After::Nothing => (false, None),
            After::Relu(draw) => (true, draw),
        };
        let bias_relu = |piece: &mut [f32], col: usize| {
            wide(|| {
                for (v, &bias) in piece.iter_mut().zip(&bv[col..]) {
                    *v += bias;
                    if relu {
                        *v = v.max(0.0);
                    }
                }
            })
        };
        // Without a mask, each column block's thread adds the bias (and the ReLU) to its own
        // columns as soon as their product is done, instead of on the calling thread while the
        // pool waits.
        let epilogue: Option<Epilogue<'_>> = match draw {
            None => Some(&bias_relu),
            Some(_) => None,
        };
        let (mut out, done) = product_then(
            (m, n, k),
            &xv,
            (k, 1),
            &wv,
            (n, 1),
            Split::Columns,
            threads,
            epilogue,
        );
        if !done {
            let f = |start: usize, chunk: &mut [f32]| {
                for_rows(start, chunk, n, bias_relu);
                if let Some(d) = draw {
                    d.apply(start, chunk);
                }
            };
            match draw {
                // Drawing the mask is the costly part of the pass; it pays to split.
                Some(_) => par_chunks(&mut out, f),
                None => cheap_pass(&mut out, f),
            }
        }
        tensor(out, [m, n])
    }
}

/// The backward step of [`DenseOps::dense`] on the CPU backend.
#[derive(Debug)]
struct DenseBackward;

/// What the backward step keeps: the input and weights (as checkpointed nodes), the output,
/// and `Some(scale)` (the mask's kept value, 1 without dropout) when a ReLU followed.
type DenseState = (NodeId, NodeId, FlexTensor, Option<f32>);

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseState;

    fn backward(self, ops: Ops<DenseState, 3>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, w_id, y, relu_scale) = ops.state;
        let [m, n] = dims(&y);
        let gv = values(&grad);
        let dz: std::borrow::Cow<'_, [f32]> = match relu_scale {
            None => gv,
            Some(scale) => relu_gradient(&gv, &y, scale).into(),
        };
        let w: Option<FlexTensor> = x_node.as_ref().map(|_| cp.retrieve_node_output(w_id));
        let x: Option<FlexTensor> = w_node.as_ref().map(|_| cp.retrieve_node_output(x_id));
        // dx = dz · wᵀ, on `threads` threads.
        let dx = |w: &FlexTensor, threads| {
            let [k, _] = dims(w);
            (input_gradient(&dz, &values(w), (m, n, k), threads), k)
        };
        // dw = xᵀ · dz.
        let dw = |x: &FlexTensor, threads| {
            let [_, k] = dims(x);
            let v = product(
                (k, n, m),
                &values(x),
                (1, k),
                &dz,
                (n, 1),
                Split::Gemm,
                threads,
            );
            (v, k)
        };
        let pool = rayon::current_num_threads();
        let db = || b_node.as_ref().map(|_| bias_gradient(&dz, n));
        let ((dxs, dws), dbs) = match (&w, &x) {
            // The two products have the same number of multiply-adds (batch · inputs · outputs),
            // so each takes half of the pool, at the same time. With two threads that is one
            // unsplit product per thread, which beat each product split over both in turn
            // (`docs/speed.md`).
            // Products too small to split (the logits layer's) still run side by side. Either
            // way each product runs as it would alone, so the bits do not change.
            (Some(w), Some(x)) if pool >= 2 && m * n * dims::<2>(w)[0] >= SIDE_BY_SIDE => {
                let ((a, b), c) = rayon::join(
                    || rayon::join(|| dx(w, pool / 2), || dw(x, pool - pool / 2)),
                    db,
                );
                ((Some(a), Some(b)), c)
            }
            // The first layer's: no input gradient; its bias gradient beside the product.
            (None, Some(x)) if pool >= 2 && m * n * dims::<2>(x)[1] >= SIDE_BY_SIDE => {
                let (b, c) = rayon::join(|| dw(x, pool), db);
                ((None, Some(b)), c)
            }
            _ => ((w.map(|w| dx(&w, pool)), x.map(|x| dw(&x, pool))), db()),
        };
        if let (Some(node), Some((v, k))) = (x_node, dxs) {
            grads.register::<Flex>(node.id, tensor(v, [m, k]));
        }
        if let (Some(node), Some((v, k))) = (w_node, dws) {
            grads.register::<Flex>(node.id, tensor(v, [k, n]));
        }
        if let (Some(node), Some(db)) = (b_node, dbs) {
            grads.register::<Flex>(node.id, tensor(db, [n]));
        }
    }
}

/// The gradient through a ReLU (and dropout mask) that kept its kept elements scaled by
/// `scale`, from the output gradient `gv` and the output `y`.
fn relu_gradient(gv: &[f32], y: &FlexTensor, scale: f32) -> Vec<f32> {
    // The output is positive exactly where the ReLU passed and the mask kept, and every kept
    // element was scaled by the same value.
    let yv = values(y);
    let grad = move |(&g, &out): (&f32, &f32)| if out > 0.0 { g * scale } else { 0.0 };
    // Written once from the output gradient and the output, not copied and then rewritten:
    // this pass runs on the stepping thread while the other workers wait.
    if gv.len() < CHEAP_SERIAL {
        wide(|| gv.iter().zip(yv.iter()).map(grad).collect())
    } else {
        let mut dz = vec![0f32; gv.len()];
        par_chunks(&mut dz, |start, chunk| {
            let end = start + chunk.len();
            let from = gv[start..end].iter().zip(&yv[start..end]).map(grad);
            wide(|| chunk.iter_mut().zip(from).for_each(|(d, v)| *d = v))
        });
        dz
    }
}

/// The bias gradient: `dz` (`[batch, n]`) summed down the batch.
fn bias_gradient(dz: &[f32], n: usize) -> Vec<f32> {
    let mut db = vec![0f32; n];
    for row in dz.chunks_exact(n) {
        for (s, g) in db.iter_mut().zip(row) {
            *s += g;
        }
    }
    db
}

impl<C: CheckpointStrategy> DenseOps for Autodiff<Flex, C> {
    fn dense(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        after: After,
    ) -> FloatTensor<Self> {
        let prep = DenseBackward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful();
        let run = |x: &FloatTensor<Self>, w: &FloatTensor<Self>, b: FloatTensor<Self>| {
            Flex::dense(
                x.primitive().clone(),
                w.primitive().clone(),
                b.into_primitive(),
                after,
            )
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let (x_id, w_id) = (prep.checkpoint(&x), prep.checkpoint(&w));
                let y = run(&x, &w, b);
                let scale = match after {
                    After::Nothing => None,
                    After::Relu(draw) => Some(draw.map_or(1.0, |d| d.scale())),
                };
                prep.finish((x_id, w_id, y.clone(), scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(&x, &w, b)),
        }
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
