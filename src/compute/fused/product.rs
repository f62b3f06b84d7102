//! The dense layer's matrix products: gemm on row-major storage, split over the thread pool
//! in the way that measured fastest for each product, and always summed in the same order, so
//! that the bits do not depend on the split or the number of threads.

use rayon::prelude::*;

/// Multiply-adds above which a product is split over the thread pool: burn-flex's own
/// threshold, so that products run exactly as they did through burn.
pub(super) const PARALLEL_WORK: usize = 192 * 192 * 192;

/// How a product large enough for the thread pool is split over it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Split {
    /// By gemm itself: the weight gradient's, whose depth is the batch.
    Gemm,
    /// Into a block of output columns per thread, each block a single-threaded gemm: the
    /// forward product's and the input gradient's, whose outputs are a batch of rows with a deep
    /// product behind each. At training's batch and widths it was never slower than gemm's own
    /// split and often much faster (`docs/speed.md`). Each output element is summed in the same
    /// order either way (gemm's depth blocks depend on the depth and the caches alone), so the
    /// values are the same bits.
    Columns,
}

/// Columns below which a block is not worth a thread of its own.
const MIN_BLOCK: usize = 64;

/// An output buffer's address, shared by the threads that each write their own columns of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: the threads given an `Out` write disjoint blocks of one buffer, which outlives
// them: `product_then` and `input_gradient` join them before they return the buffer.
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
/// (row, column) strides, as burn-flex runs its products, split as `split` says over `threads`
/// threads of the pool (on the calling thread alone when below two, or when the product is
/// small). The bits are the same for any split and thread count.
pub(super) fn product(
    dims: (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    split: Split,
    threads: usize,
) -> Vec<f32> {
    let (out, _) = product_then(dims, a, a_strides, b, b_strides, split, threads, None);
    out
}

/// What a column block's thread does to its part of each output row right after the block's
/// product, while it is still in cache: `f(piece, column of its first element)`.
pub(super) type Epilogue<'a> = &'a (dyn Fn(&mut [f32], usize) + Sync);

/// [`product`], then `epilogue` on every row piece of each column block, on the block's own
/// thread, when the product was split into column blocks. Says whether it ran the epilogue;
/// when not, the caller makes the pass itself.
#[allow(clippy::too_many_arguments)]
pub(super) fn product_then(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    split: Split,
    threads: usize,
    epilogue: Option<Epilogue<'_>>,
) -> (Vec<f32>, bool) {
    // The strides are the caller's: bound the last element they address, not just the count.
    assert!(m * k == 0 || a.len() >= extent(m, k, a_rs, a_cs));
    assert!(k * n == 0 || b.len() >= extent(k, n, b_rs, b_cs));
    // Not zeroed first: the weight gradients are megabytes, and zeroing them cost a pass over
    // memory per step that gemm then overwrote.
    let mut out = Vec::<f32>::with_capacity(m * n);
    let out_ptr = Out(out.as_mut_ptr());
    // One block of columns `[col, col + width)`, with gemm's `parallelism`.
    let block = |col: usize, width: usize, parallelism| {
        // SAFETY: `out` has room for the m·n elements of the output, and every element of `a`
        // and `b` their strides address lies inside them (asserted above). Columns
        // `[col, col + width)` of `b` and of the output lie inside them, at the same row
        // strides, and only this block's thread writes them.
        unsafe {
            gemm_raw(
                (m, width, k),
                (out_ptr.column(col), n, 1),
                (a.as_ptr(), a_rs, a_cs),
                (b.as_ptr().wrapping_add(col * b_cs), b_rs, b_cs),
                parallelism,
            );
        }
    };
    let mut applied = false;
    match plan(m.saturating_mul(n).saturating_mul(k), n, threads, split) {
        Plan::Whole(parallelism) => block(0, n, parallelism),
        Plan::Blocks(width) => {
            in_blocks(n, width, |col, w| {
                block(col, w, gemm::Parallelism::None);
                if let Some(f) = epilogue {
                    for row in 0..m {
                        // SAFETY: the block's gemm has just written these `w` elements of row
                        // `row`, inside the m·n the buffer holds; no other thread touches this
                        // block's columns.
                        let piece = unsafe {
                            std::slice::from_raw_parts_mut(out_ptr.column(row * n + col), w)
                        };
                        f(piece, col);
                    }
                }
            });
            applied = epilogue.is_some();
        }
    }
    // SAFETY: the blocks cover the n columns, and each wrote all m rows of its own.
    unsafe { out.set_len(m * n) };
    (out, applied)
}

/// One past the last element a `rows × cols` matrix at strides `(rs, cs)` addresses.
pub(super) fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs + 1
}

/// Output rows of the transposed input gradient that one thread moves into place at a time:
/// their pieces of the output stay in the first-level cache while they are written.
const TILE: usize = 16;

/// `dz · wᵀ`, the input gradient of a dense layer with output gradient `dz` `[m, n]` and
/// weights `w` `[k, n]` (both row-major), as a new row-major `[m, k]` matrix, on `threads`
/// threads of the pool.
///
/// gemm vectorizes along the output's contiguous dimension and packs the operand that runs
/// along it. Written straight as `[m, k]`, that operand is `w` read down its columns, one cache
/// line per element. Written as `[k, m]` instead, gemm packs `dz` and reads `w` along its rows,
/// and each block of the result is then transposed into place by the thread that made it,
/// which together cost less than the direct product (`docs/speed.md`). Each element is the
/// same sum in the same order (the depth
/// is `n` either way, and gemm's depth blocks depend on the depth and the caches alone), so the
/// bits are the direct product's.
pub(super) fn input_gradient(
    dz: &[f32],
    w: &[f32],
    (m, n, k): (usize, usize, usize),
    threads: usize,
) -> Vec<f32> {
    // Both are dense row-major, so these are the last elements the products below address.
    assert!(m * n == 0 || dz.len() >= extent(m, n, n, 1));
    assert!(k * n == 0 || w.len() >= extent(k, n, n, 1));
    if m == 0 {
        return Vec::new();
    }
    let mut t = Vec::<f32>::with_capacity(k * m);
    let mut out = Vec::<f32>::with_capacity(m * k);
    let (t_ptr, out_ptr) = (Out(t.as_mut_ptr()), Out(out.as_mut_ptr()));
    // Rows `[row, row + rows)` of the transposed product, then the same columns of `out`.
    let block = |row: usize, rows: usize, parallelism| {
        // SAFETY: `t` has room for k·m elements, and rows `[row, row + rows)` of it (m each)
        // lie inside; `dz` holds the m·n elements and `w` the k·n elements these strides
        // address (asserted above); only this block's thread writes these rows.
        unsafe {
            gemm_raw(
                (m, rows, n),
                (t_ptr.column(row * m), 1, m),
                (dz.as_ptr(), n, 1),
                (w.as_ptr().wrapping_add(row * n), 1, n),
                parallelism,
            );
        }
        // SAFETY: gemm has just written these rows·m elements, and no thread writes them again.
        let block = unsafe { std::slice::from_raw_parts(t_ptr.column(row * m), rows * m) };
        for first in (0..m).step_by(TILE) {
            let last = (first + TILE).min(m);
            // SAFETY: the pieces are columns `[row, row + rows)` of output rows `first..last`,
            // inside the m·k elements of `out`; only this block's thread writes these columns.
            let mut pieces: Vec<&mut [f32]> = (first..last)
                .map(|i| unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.column(i * k + row), rows)
                })
                .collect();
            for (j, sums) in block.chunks_exact(m).enumerate() {
                for (piece, &v) in pieces.iter_mut().zip(&sums[first..last]) {
                    piece[j] = v;
                }
            }
        }
    };
    match plan(
        m.saturating_mul(n).saturating_mul(k),
        k,
        threads,
        Split::Columns,
    ) {
        Plan::Whole(parallelism) => block(0, k, parallelism),
        Plan::Blocks(width) => in_blocks(k, width, |row, rows| {
            block(row, rows, gemm::Parallelism::None)
        }),
    }
    // SAFETY: the blocks cover the k columns of every one of the m rows.
    unsafe { out.set_len(m * k) };
    out
}

/// How a product runs: whole, with gemm's own parallelism, or in column blocks of this width,
/// each a single-threaded gemm on a thread of its own.
enum Plan {
    Whole(gemm::Parallelism),
    Blocks(usize),
}

/// The plan for a product of `work` multiply-adds with `cols` output columns on `threads`
/// threads: whole on this thread when small or alone, `split` as asked when large, and gemm's
/// own split when there are too few columns for two blocks.
fn plan(work: usize, cols: usize, threads: usize, split: Split) -> Plan {
    let blocks = (cols / MIN_BLOCK).min(threads);
    if work < PARALLEL_WORK || threads < 2 {
        Plan::Whole(gemm::Parallelism::None)
    } else if split == Split::Gemm || blocks < 2 {
        Plan::Whole(gemm::Parallelism::Rayon(threads))
    } else {
        // Widths a multiple of 16 keep each block's first column on a cache line's start.
        Plan::Blocks(cols.div_ceil(blocks).next_multiple_of(16))
    }
}

/// Calls `f(first column, width)` for the blocks of `width` that cover `cols` columns (the last
/// one narrower), in parallel on the pool.
fn in_blocks(cols: usize, width: usize, f: impl Fn(usize, usize) + Sync) {
    (0..cols.div_ceil(width)).into_par_iter().for_each(|i| {
        let first = i * width;
        f(first, width.min(cols - first));
    });
}

/// `dst = a · b` through gemm, for an `m × n` output at depth `k`, each matrix given as its
/// first element and its (row, column) strides.
///
/// # Safety
/// Every element the strides address, for these sizes, lies inside its matrix's buffer, and no
/// other thread reads or writes the output's elements meanwhile. gemm does not read `dst`: it
/// writes each of its m·n elements (a zero depth included).
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (*mut f32, usize, usize),
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs, b_cs): (*const f32, usize, usize),
    parallelism: gemm::Parallelism,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            false,
            a,
            a_cs as isize,
            a_rs as isize,
            b,
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
}
