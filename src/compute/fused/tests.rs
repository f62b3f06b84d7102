//! Tests of the fused dense layer: values and gradients against burn's composition and finite
//! differences, and the products' bits under every split.

use super::test_support::{numbers, same_on_any_pool, vec_of};
use super::*;
use burn::nn::LinearConfig;
use burn::tensor::Device;

fn matrix(v: &[f32], shape: [usize; 2], d: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
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
fn the_gradients_have_the_same_bits_on_any_pool() {
    // One thread runs both products of the backward step in turn, unsplit; two run them at the
    // same time, one each; three and four give each product its share of the pool.
    let dims = (128, 300, 400);
    assert!(
        dims.0 * dims.1 * dims.2 >= PARALLEL_WORK,
        "large enough to split"
    );
    same_on_any_pool(|| run(true, dims, After::Relu(None)));
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
            let forward = product((m, n, k), &x, (k, 1), &w, (n, 1), split, 3);
            let input_grad = product((m, k, n), &dz, (n, 1), &w, (1, n), split, 3);
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
                    product((m, n, k), &x, (k, 1), &w, (n, 1), Split::Columns, 3),
                    product((m, k, n), &dz, (n, 1), &w, (1, n), Split::Columns, 3),
                ];
                assert_eq!(blocks, [forward, input_grad], "same bits either way");
            }
        }
        // The input gradient as the backward step computes it, transposed and back: on one
        // thread, in column blocks of odd widths, on gemm's own split (too few inputs for two
        // blocks), and for a single row.
        for (rows, inputs, threads) in [(m, k, 1), (m, k, 3), (37, k, 2), (m, 100, 3), (1, k, 3)] {
            let w = &w[..inputs * n];
            let direct = product((rows, inputs, n), &dz, (n, 1), w, (1, n), Split::Columns, 3);
            let got = input_gradient(&dz, w, (rows, n, inputs), threads);
            assert_eq!(got, direct, "{rows} × {inputs}, {threads} threads");
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

/// Strides that walk past the end of `b` are refused before gemm reads. The matrix is a prefix
/// of a longer buffer, so without the check the overrun would read valid memory and pass.
#[test]
#[should_panic(expected = "extent")]
fn a_product_whose_strides_overrun_its_operand_is_refused() {
    let (m, k, n) = (4, 8, 6);
    let (a, longer) = (numbers(m * k, 1), numbers(2 * k * n, 2));
    // Holds k·n elements, but column stride 2 addresses up to 2·(n - 1) + (k - 1)·n.
    let b = &longer[..k * n];
    product((m, n, k), &a, (k, 1), b, (n, 2), Split::Columns, 1);
}

/// The same for the input gradient's weights, one row short.
#[test]
#[should_panic(expected = "extent")]
fn an_input_gradient_with_short_weights_is_refused() {
    let (m, n, k) = (4, 6, 8);
    let (dz, longer) = (numbers(m * n, 1), numbers(2 * k * n, 2));
    input_gradient(&dz, &longer[..(k - 1) * n], (m, n, k), 1);
}
