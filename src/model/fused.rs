//! A dense layer — matrix product, bias, ReLU and dropout mask — as one operation of the CPU
//! backend, forward and backward, through burn's backend-extension mechanism.
//!
//! Composed from burn's primitives, a hidden layer's step is a matrix product whose result
//! burn-flex allocates zeroed and then copies to re-align, a bias add, a ReLU, a mask multiply,
//! and in the backward pass as many element-wise passes again; those passes ran on the calling
//! thread while the other core waited. Here the product is written once into its own buffer,
//! unzeroed, and bias, ReLU and mask are one pass over it; the backward pass turns the output
//! gradient into the pre-activation gradient in one pass and runs the two products straight
//! from it. Each pass is split over the pool only where that measured faster. The values are
//! burn's: the same products summed in the same order, the bias added after the product as
//! burn adds it, and the same masks.

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

use rayon::prelude::*;

use super::dropout::{MaskDraw, par_chunks};

/// Multiply-adds above which a product is split over the thread pool: burn-flex's own
/// threshold, so that products run exactly as they did through burn.
const PARALLEL_WORK: usize = 192 * 192 * 192;

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

fn dims2(t: &FlexTensor) -> (usize, usize) {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 2, "the fused dense layer takes matrices");
    (shape[0], shape[1])
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// How a product large enough for the thread pool is split over it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Split {
    /// By gemm itself: the weight gradient's, whose depth is the batch.
    Gemm,
    /// Into a block of output columns per thread, each block a single-threaded gemm: the
    /// forward product's and the input gradient's, whose outputs are a batch of rows with a deep
    /// product behind each. On a 2-core Intel Xeon this took 0.57 to 1.00 of the time of gemm's
    /// own split at batch 128 and widths 784 to 1,200. Each output element is summed in the same
    /// order either way (gemm's depth blocks depend on the depth and the caches alone), so the
    /// values are the same bits.
    Columns,
}

/// Columns below which a block is not worth a thread of its own.
const MIN_BLOCK: usize = 64;

/// An output buffer's address, shared by the threads that each write their own columns of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: the threads given an `Out` write disjoint column blocks of one buffer, which
// outlives them: `product` joins them before it returns the buffer.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The address of column `col` of the first row (a method, so that closures capture the
    /// whole `Out` and not its pointer field alone).
    fn column(self, col: usize) -> *mut f32 {
        self.0.wrapping_add(col)
    }
}

/// `a · b` as a new row-major `[m, n]` matrix, with `a` and `b` given as row-major storage and
/// (row, column) strides, as burn-flex runs its products.
fn product(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    split: Split,
) -> Vec<f32> {
    assert!(a.len() >= m * k && b.len() >= k * n);
    // Not zeroed first: the weight gradients are megabytes, and zeroing them cost a pass over
    // memory per step that gemm then overwrote.
    let mut out = Vec::<f32>::with_capacity(m * n);
    let out_ptr = Out(out.as_mut_ptr());
    // One block of columns `[col, col + width)`, with gemm's `parallelism`.
    let block = |col: usize, width: usize, parallelism| {
        // SAFETY: `out` has room for the m·n elements of the output, and `a` and `b` hold the
        // m·k and k·n elements their strides address (asserted above; every caller's stride
        // pair walks a dense row-major or transposed matrix of those sizes). Columns
        // `[col, col + width)` of `b` and of the output lie inside them, at the same row
        // strides. With `read_dst` false gemm never reads the destination and writes each of
        // the block's m·width elements on every path (a zero depth included).
        unsafe {
            gemm::gemm(
                m,
                width,
                k,
                out_ptr.column(col),
                1,
                n as isize,
                false,
                a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr().wrapping_add(col * b_cs),
                b_cs as isize,
                b_rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let threads = rayon::current_num_threads();
    let blocks = (n / MIN_BLOCK).min(threads);
    if m.saturating_mul(n).saturating_mul(k) < PARALLEL_WORK {
        block(0, n, gemm::Parallelism::None);
    } else if split == Split::Gemm || blocks < 2 {
        block(0, n, gemm::Parallelism::Rayon(0));
    } else {
        // Widths a multiple of 16 keep each block's first column on a cache line's start.
        let width = n.div_ceil(blocks).next_multiple_of(16);
        (0..n.div_ceil(width)).into_par_iter().for_each(|i| {
            let col = i * width;
            block(col, width.min(n - col), gemm::Parallelism::None);
        });
    }
    // SAFETY: the blocks cover the n columns, and each wrote all m rows of its own.
    unsafe { out.set_len(m * n) };
    out
}

/// Elements below which a cheap element-wise pass (a bias and ReLU, the ReLU's gradient) runs
/// on the calling thread. At the batch sizes of training (128 by 800 or 1,200) such a pass takes
/// about 30 µs on one thread; split over a 2-core Intel Xeon's pool it measured ten times that.
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
        let ((m, k), (k2, n)) = (dims2(&x), dims2(&w));
        assert_eq!(k, k2, "dense layer: input width against weight rows");
        let (xv, wv, bv) = (values(&x), values(&w), values(&b));
        assert_eq!(bv.len(), n, "dense layer: one bias per output");
        let mut out = product((m, n, k), &xv, (k, 1), &wv, (n, 1), Split::Columns);
        let (relu, draw) = match after {
            After::Nothing => (false, None),
            After::Relu(draw) => (true, draw),
        };
        let f = |start: usize, chunk: &mut [f32]| {
            for_rows(start, chunk, n, |piece, col| {
                for (v, &bias) in piece.iter_mut().zip(&bv[col..]) {
                    *v += bias;
                    if relu {
                        *v = v.max(0.0);
                    }
                }
            });
            if let Some(d) = draw {
                d.apply(start, chunk);
            }
        };
        match draw {
            // Drawing the mask is the costly part of the pass; it pays to split.
            Some(_) => par_chunks(&mut out, f),
            None => cheap_pass(&mut out, f),
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
        let (m, n) = dims2(&y);
        let gv = values(&grad);
        let dz: std::borrow::Cow<'_, [f32]> = match relu_scale {
            None => gv,
            Some(scale) => {
                // The output is positive exactly where the ReLU passed and the mask kept, and
                // every kept element was scaled by the same value.
                let yv = values(&y);
                let mut dz = gv.into_owned();
                cheap_pass(&mut dz, |start, chunk| {
                    let outs = &yv[start..start + chunk.len()];
                    for (g, &out) in chunk.iter_mut().zip(outs) {
                        *g = if out > 0.0 { *g * scale } else { 0.0 };
                    }
                });
                dz.into()
            }
        };
        if let Some(node) = x_node {
            let w: FlexTensor = cp.retrieve_node_output(w_id);
            let k = dims2(&w).0;
            // dx = dz · wᵀ: w's storage read with its strides swapped.
            let dx = product((m, k, n), &dz, (n, 1), &values(&w), (1, n), Split::Columns);
            grads.register::<Flex>(node.id, tensor(dx, [m, k]));
        }
        if let Some(node) = w_node {
            let x: FlexTensor = cp.retrieve_node_output(x_id);
            let k = dims2(&x).1;
            // dw = xᵀ · dz.
            let dw = product((k, n, m), &values(&x), (1, k), &dz, (n, 1), Split::Gemm);
            grads.register::<Flex>(node.id, tensor(dw, [k, n]));
        }
        if let Some(node) = b_node {
            let mut db = vec![0f32; n];
            for row in dz.chunks_exact(n) {
                for (s, g) in db.iter_mut().zip(row) {
                    *s += g;
                }
            }
            grads.register::<Flex>(node.id, tensor(db, [n]));
        }
    }
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
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::Device;

    /// Deterministic values in `[-1, 1)`.
    fn numbers(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn matrix(v: &[f32], shape: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
    }

    fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// Output, and the gradients of `sum(y ⊙ r)` for x, w and b, through the fused layer or
    /// burn's composition.
    fn run(fused: bool, (m, k, n): (usize, usize, usize), after: After) -> [Vec<f32>; 4] {
        let d = Device::flex().autodiff();
        let mut layer = LinearConfig::new(k, n).init(&d);
        let w = matrix(&numbers(k * n, 1), [k, n], &d);
        layer.weight = burn::module::Param::from_tensor(w);
        let b = Tensor::<1>::from_data(TensorData::new(numbers(n, 2), [n]), &d);
        layer.bias = Some(burn::module::Param::from_tensor(b));
        let x = matrix(&numbers(m * k, 3), [m, k], &d).require_grad();
        let r = matrix(&numbers(m * n, 4), [m, n], &d);
        let y = if fused {
            dense_layer(x.clone(), &layer, after)
        } else {
            dense_layer_composed(x.clone(), &layer, after)
        };
        let grads = (y.clone() * r).sum().backward();
        let grad = |t: Tensor<2>| vec_of(t.grad(&grads).unwrap());
        let db = layer.bias.as_ref().unwrap().val().grad(&grads).unwrap();
        [vec_of(y), grad(x), grad(layer.weight.val()), vec_of(db)]
    }

    #[test]
    fn values_and_gradients_are_burns() {
        let cases = [
            // Small products on one thread; a large one split over the pool, its element-wise
            // passes on one thread; a larger one whose passes are split too, into chunks that
            // start mid-row.
            ((4, 5, 6), After::Relu(Some(MaskDraw::new(0.6, 7)))),
            ((4, 5, 6), After::Relu(None)),
            ((4, 5, 6), After::Nothing),
            ((128, 200, 600), After::Relu(Some(MaskDraw::new(0.5, 9)))),
            ((128, 200, 600), After::Nothing),
            ((448, 200, 600), After::Relu(Some(MaskDraw::new(0.5, 9)))),
            ((448, 200, 600), After::Relu(None)),
        ];
        for (dims, after) in cases {
            let ours = run(true, dims, after);
            let burns = run(false, dims, after);
            // The forward pass runs the same product and adds the bias the same way.
            assert_eq!(ours[0], burns[0], "{dims:?} output");
            for (i, what) in [(1, "x"), (2, "w"), (3, "b")] {
                let scale = burns[i].iter().fold(1f32, |a, v| a.max(v.abs()));
                for (a, b) in ours[i].iter().zip(&burns[i]) {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "{dims:?} d{what}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn column_blocks_give_gemms_bits() {
        // Three threads, so that the blocks are uneven and the last one narrower.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (m, k, n) = (128, 300, 700);
        let (x, w, dz) = (numbers(m * k, 1), numbers(k * n, 2), numbers(m * n, 3));
        pool.install(|| {
            for split in [Split::Columns, Split::Gemm] {
                let forward = product((m, n, k), &x, (k, 1), &w, (n, 1), split);
                let input_grad = product((m, k, n), &dz, (n, 1), &w, (1, n), split);
                let reference = |a: &[f32], b: &[f32], (m, n, k), transposed: bool| {
                    let mut out = vec![0f64; m * n];
                    for (i, row) in out.chunks_mut(n).enumerate() {
                        for (j, o) in row.iter_mut().enumerate() {
                            *o = (0..k)
                                .map(|l| {
                                    let bv = if transposed {
                                        b[j * k + l]
                                    } else {
                                        b[l * n + j]
                                    };
                                    a[i * k + l] as f64 * bv as f64
                                })
                                .sum();
                        }
                    }
                    out
                };
                for (got, want) in [
                    (&forward, reference(&x, &w, (m, n, k), false)),
                    (&input_grad, reference(&dz, &w, (m, k, n), true)),
                ] {
                    for (g, r) in got.iter().zip(&want) {
                        assert!((*g as f64 - r).abs() < 1e-3, "{split:?}: {g} vs {r}");
                    }
                }
                if split == Split::Gemm {
                    let blocks = [
                        product((m, n, k), &x, (k, 1), &w, (n, 1), Split::Columns),
                        product((m, k, n), &dz, (n, 1), &w, (1, n), Split::Columns),
                    ];
                    assert_eq!(blocks, [forward, input_grad], "same bits either way");
                }
            }
        });
    }

    /// `sum(y ⊙ r)` and the pre-activations, on the plain (non-autodiff) device.
    fn objective(x: &[f32], w: &[f32], b: &[f32], dims: (usize, usize, usize)) -> (f64, Vec<f32>) {
        let (m, k, n) = dims;
        let d = Device::flex();
        let layer = |after: After| {
            let out = <Dispatch as DenseOps>::dense(
                matrix(x, [m, k], &d).into_dispatch(),
                matrix(w, [k, n], &d).into_dispatch(),
                Tensor::<1>::from_data(TensorData::new(b.to_vec(), [n]), &d).into_dispatch(),
                after,
            );
            vec_of(Tensor::<2>::from_dispatch(out))
        };
        let y = layer(After::Relu(Some(MaskDraw::new(0.6, 7))));
        let r = numbers(m * n, 4);
        let sum = y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum();
        (sum, layer(After::Nothing))
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dims = (4, 5, 6);
        let (m, k, n) = dims;
        let [_, dx, dw, db] = run(true, dims, After::Relu(Some(MaskDraw::new(0.6, 7))));
        let base = [numbers(m * k, 3), numbers(k * n, 1), numbers(n, 2)];
        let h = 1e-2f32;
        let (mut checked, mut total) = (0, 0);
        for (which, grad) in [dx, dw, db].iter().enumerate() {
            for i in 0..grad.len() {
                let shifted = |delta: f32| {
                    let mut p = base.clone();
                    p[which][i] += delta;
                    objective(&p[0], &p[1], &p[2], dims)
                };
                let ((up, z_up), (down, z_down)) = (shifted(h), shifted(-h));
                let z = objective(&base[0], &base[1], &base[2], dims).1;
                total += 1;
                // A step across a ReLU's kink has no derivative to compare with.
                let side = |v: &[f32]| v.iter().map(|&a| a > 0.0).collect::<Vec<_>>();
                if side(&z_up) != side(&z) || side(&z_down) != side(&z) {
                    continue;
                }
                checked += 1;
                let fd = (up - down) / (2.0 * h as f64);
                let g = grad[i] as f64;
                assert!(
                    (g - fd).abs() < 1e-2 * fd.abs().max(0.1),
                    "d{which}[{i}]: {g} vs {fd}"
                );
            }
        }
        assert!(
            checked * 10 >= total * 8,
            "only {checked} of {total} away from a kink"
        );
    }
}
