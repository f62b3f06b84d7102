//! A 3×3 convolution (stride 1, zero padding 1) with its bias, forward and backward, as one
//! operation of the CPU backend, through burn's backend-extension mechanism.
//!
//! Each image is unfolded into the columns of its 3×3 windows and multiplied by the weights in
//! one product, images in parallel; the backward step unfolds again rather than keeping the
//! columns (megabytes per batch), folds the columns' gradient back into the input's, and sums
//! the weights' gradient over fixed groups of images, so that the bits are the same on any
//! number of threads.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use rayon::prelude::*;

use super::product::extent;
use super::{dims, tensor, values};

/// Images whose weight gradients are summed together before the groups' sums are added, in
/// order: fixed, so that the sum's order does not depend on the thread count.
const GROUP: usize = 8;

/// The fused convolution as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait ConvOps: Backend {
    /// `x` `[n, c, h, w]` convolved with `w` `[o, c, 3, 3]` (stride 1, zero padding 1), plus
    /// `b` `[o]`: `[n, o, h, w]`.
    fn conv3x3(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Applies `conv` to `x`: through the fused operation where the layer is the 3×3, stride-1,
/// padding-1, biased convolution the CNNs build, through burn's own otherwise.
pub(crate) fn conv_layer(x: Tensor<4>, conv: &Conv2d) -> Tensor<4> {
    let [_, _, kh, kw] = conv.weight.dims();
    let plain = conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && (kh, kw) == (3, 3)
        && conv.padding == PaddingConfig2d::Explicit(1, 1, 1, 1);
    match (&conv.bias, plain && !cfg!(feature = "cuda")) {
        (Some(bias), true) => Tensor::from_dispatch(<Dispatch as ConvOps>::conv3x3(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
        )),
        _ => conv.forward(x),
    }
}

/// `dst` `[m, n]` (row-major) set to, or with `add` increased by, `a · b`, on this thread;
/// `a` and `b` given as storage with (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn product_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    add: bool,
) {
    assert!(dst.len() >= m * n);
    assert!(m * k == 0 || a.len() >= extent(m, k, a_rs, a_cs));
    assert!(k * n == 0 || b.len() >= extent(k, n, b_rs, b_cs));
    // SAFETY: `dst` holds the m·n outputs, and the strides address elements of `a` and `b`
    // inside them (asserted just above). gemm reads `dst` only when `add` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `v` (`[rows, cols]`, row-major) transposed.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| v[(i % rows) * cols + i / rows])
        .collect()
}

/// One row of an image's 3×3 columns as a single shifted run: its output positions
/// `[out, out + len)` read input positions `[input, input + len)` of channel `ci`'s plane.
/// Lines whose window row falls outside the image are not in the run. With `kx` 0 or 2 the run
/// also crosses from one line to the next, so its positions at the left (`kx` 0) or right
/// (`kx` 2) edge of each line read the neighbouring line's last or first input, where the
/// convolution reads padding: [`edges`] lists them for the caller to zero.
#[derive(Debug, Clone, Copy)]
struct Run {
    row: usize,
    kx: usize,
    /// The lines `[y0, y1)` whose window row is inside the image.
    lines: (usize, usize),
    out: usize,
    input: usize,
    len: usize,
}

/// The runs of an image of `c` channels of `h` by `w` pixels, row by row.
fn runs(c: usize, h: usize, w: usize) -> impl Iterator<Item = Run> {
    (0..c * 9).filter_map(move |row| {
        let (ci, ky, kx) = (row / 9, row % 9 / 3, row % 3);
        // Line y reads input line y + ky - 1.
        let (y0, y1) = (usize::from(ky == 0), if ky == 2 { h - 1 } else { h });
        let whole = y1.checked_sub(y0).filter(|&l| l > 0)? * w;
        let (out, input) = (y0 * w, (y0 + ky - 1) * w + ci * h * w);
        let (out, input, len) = match kx {
            0 => (out + 1, input, whole - 1),
            1 => (out, input, whole),
            _ => (out, input + 1, whole - 1),
        };
        Some(Run {
            row,
            kx,
            lines: (y0, y1),
            out,
            input,
            len,
        })
    })
}

/// Positions (within its row) of a run's line-crossing reads, which must read zero.
fn edges(run: Run, w: usize) -> impl Iterator<Item = usize> {
    let (y0, y1) = run.lines;
    let lines = if run.kx == 1 { 0..0 } else { y0..y1 };
    let at = if run.kx == 0 { 0 } else { w - 1 };
    lines.map(move |y| y * w + at)
}

/// Unfolds image `x` (`[c, h, w]`) into `cols` (`[c·9, h·w]`): row (ci, ky, kx) holds, at each
/// output position, the input at offset (ky - 1, kx - 1), zero outside the image.
fn unfold(x: &[f32], (c, h, w): (usize, usize, usize), cols: &mut [f32]) {
    let hw = h * w;
    // The first row not written yet: rows with no line inside the image are all padding.
    let mut next = 0;
    for run in runs(c, h, w) {
        cols[next * hw..run.row * hw].fill(0.0);
        let row = &mut cols[run.row * hw..][..hw];
        let (y0, y1) = run.lines;
        row[..y0 * w].fill(0.0);
        row[y1 * w..].fill(0.0);
        row[run.out..][..run.len].copy_from_slice(&x[run.input..][..run.len]);
        for e in edges(run, w) {
            row[e] = 0.0;
        }
        next = run.row + 1;
    }
    cols[next * hw..c * 9 * hw].fill(0.0);
}

/// Adds the gradient of [`unfold`]'s columns, `dcols`, back into the image's, `dx`. The
/// padding positions of `dcols` are zeroed on the way (they are gradients of no input).
fn fold(dcols: &mut [f32], (c, h, w): (usize, usize, usize), dx: &mut [f32]) {
    let hw = h * w;
    for run in runs(c, h, w) {
        let row = &mut dcols[run.row * hw..][..hw];
        for e in edges(run, w) {
            row[e] = 0.0;
        }
        let src = &row[run.out..][..run.len];
        let out = &mut dx[run.input..][..run.len];
        out.iter_mut().zip(src).for_each(|(o, s)| *o += s);
    }
}

impl ConvOps for Flex {
    fn conv3x3(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let [n, c, h, wd] = dims::<4>(&x);
        let [o, c2, _, _] = dims::<4>(&w);
        assert_eq!(c, c2, "convolution: input channels against weights");
        let (xv, wv, bv) = (values(&x), values(&w), values(&b));
        assert_eq!(bv.len(), o, "convolution: one bias per output channel");
        let (hw, c9) = (h * wd, c * 9);
        let mut out = vec![0f32; n * o * hw];
        // Each output plane then gets its channel's bias, on the image's own thread.
        let add_bias = |y: &mut [f32]| {
            for (plane, &bias) in y.chunks_exact_mut(hw).zip(bv.iter()) {
                plane.iter_mut().for_each(|v| *v += bias);
            }
        };
        // The shapes the CNNs build have no empty dimension; without input channels the
        // product is empty and the output all bias.
        if hw > 0 && o > 0 && c > 0 {
            out.par_chunks_mut(o * hw)
                .zip(xv.par_chunks(c * hw))
                .for_each_init(
                    || vec![0f32; c9 * hw],
                    |cols, (y, x)| {
                        unfold(x, (c, h, wd), cols);
                        product_into(y, (o, hw, c9), &wv, (c9, 1), cols, (hw, 1), false);
                        add_bias(y);
                    },
                );
        } else if hw > 0 && o > 0 {
            out.chunks_mut(o * hw).for_each(add_bias);
        }
        tensor(out, [n, o, h, wd])
    }
}

/// The backward step of [`ConvOps::conv3x3`] on the CPU backend.
#[derive(Debug)]
struct ConvBackward;

/// What the backward step keeps: the input and weights, as checkpointed nodes.
type ConvState = (NodeId, NodeId);

/// One group's share of the backward step: its images' input gradients (written in place),
/// and the sums of its weight and bias gradients.
struct GroupGrads {
    /// The weights' gradient, transposed: `[c·9, o]`.
    dw: Vec<f32>,
    db: Vec<f32>,
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, w_id) = ops.state;
        let x: FlexTensor = cp.retrieve_node_output(x_id);
        let w: FlexTensor = cp.retrieve_node_output(w_id);
        let [n, c, h, wd] = dims::<4>(&x);
        let o = dims::<4>(&w)[0];
        let (hw, c9) = (h * wd, c * 9);
        let (xv, wv, gv) = (values(&x), values(&w), values(&grad));
        let (want_dx, want_dw) = (x_node.is_some(), w_node.is_some());
        // Two of the per-image products run faster with a row-major operand (`docs/speed.md`):
        // the weights transposed once here, and the weight gradient summed transposed and
        // turned at the end.
        let wt = transpose(&wv, o, c9);
        let mut dx = vec![0f32; if want_dx { n * c * hw } else { 0 }];
        let groups: Vec<usize> = (0..n.div_ceil(GROUP)).collect();
        // Each group's own images of the input gradient, when it is wanted.
        let mut group_dx: Vec<Option<&mut [f32]>> =
            dx.chunks_mut((GROUP * c * hw).max(1)).map(Some).collect();
        group_dx.resize_with(groups.len(), || None);
        let sums: Vec<GroupGrads> = groups
            .into_par_iter()
            .zip(group_dx)
            .map_init(
                || (vec![0f32; c9 * hw], vec![0f32; c9 * hw]),
                |(cols, dcols), (g, mut gdx)| {
                    let mut sums = GroupGrads {
                        dw: vec![0f32; if want_dw { o * c9 } else { 0 }],
                        db: vec![0f32; o],
                    };
                    for (j, i) in (g * GROUP..(g * GROUP + GROUP).min(n)).enumerate() {
                        let dy = &gv[i * o * hw..][..o * hw];
                        for (s, plane) in sums.db.iter_mut().zip(dy.chunks_exact(hw.max(1))) {
                            *s += plane.iter().sum::<f32>();
                        }
                        if hw == 0 || c == 0 || o == 0 {
                            continue;
                        }
                        if want_dw {
                            unfold(&xv[i * c * hw..][..c * hw], (c, h, wd), cols);
                            // dwᵀ += cols · dyᵀ
                            let dims = (c9, o, hw);
                            product_into(&mut sums.dw, dims, cols, (hw, 1), dy, (1, hw), j > 0);
                        }
                        if let Some(gdx) = gdx.as_deref_mut() {
                            // dcols = wᵀ · dy, folded back into the image's gradient.
                            product_into(dcols, (c9, hw, o), &wt, (o, 1), dy, (hw, 1), false);
                            fold(dcols, (c, h, wd), &mut gdx[j * c * hw..][..c * hw]);
                        }
                    }
                    sums
                },
            )
            .collect();
        let total = |pick: fn(&GroupGrads) -> &Vec<f32>, len: usize| {
            let mut t = vec![0f32; len];
            for s in &sums {
                t.iter_mut().zip(pick(s)).for_each(|(t, v)| *t += v);
            }
            t
        };
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, tensor(dx, [n, c, h, wd]));
        }
        if let Some(node) = w_node {
            let dw = transpose(&total(|s| &s.dw, o * c9), c9, o);
            grads.register::<Flex>(node.id, tensor(dw, [o, c, 3, 3]));
        }
        if let Some(node) = b_node {
            grads.register::<Flex>(node.id, tensor(total(|s| &s.db, o), [o]));
        }
    }
}

impl<C: CheckpointStrategy> ConvOps for Autodiff<Flex, C> {
    fn conv3x3(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = ConvBackward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful();
        let run = |x: &FloatTensor<Self>, w: &FloatTensor<Self>, b: FloatTensor<Self>| {
            Flex::conv3x3(
                x.primitive().clone(),
                w.primitive().clone(),
                b.into_primitive(),
            )
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let (x_id, w_id) = (prep.checkpoint(&x), prep.checkpoint(&w));
                let y = run(&x, &w, b);
                prep.finish((x_id, w_id), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(&x, &w, b)),
        }
    }
}

#[cfg(test)]
mod tests;
