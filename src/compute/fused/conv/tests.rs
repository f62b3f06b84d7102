//! Tests of the fused convolution: values and gradients against burn's convolution and finite
//! differences, and the same bits on any pool.

use super::super::test_support::{numbers, same_on_any_pool, vec_of};
use super::*;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, TensorData};

/// A layer of `c` to `o` channels with the given weights and bias on `d`.
fn layer(c: usize, o: usize, w: &[f32], b: &[f32], d: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new([c, o], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(d);
    let wt = Tensor::<4>::from_data(TensorData::new(w.to_vec(), [o, c, 3, 3]), d);
    conv.weight = burn::module::Param::from_tensor(wt);
    let bt = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [o]), d);
    conv.bias = Some(burn::module::Param::from_tensor(bt));
    conv
}

/// Output, and the gradients of `sum(y ⊙ r)` for x, w and b, through the fused layer or
/// burn's convolution.
fn run(fused: bool, [n, c, h, w]: [usize; 4], o: usize) -> [Vec<f32>; 4] {
    let d = Device::flex().autodiff();
    let conv = layer(c, o, &numbers(o * c * 9, 1), &numbers(o, 2), &d);
    let x = Tensor::<4>::from_data(TensorData::new(numbers(n * c * h * w, 3), [n, c, h, w]), &d)
        .require_grad();
    let r = Tensor::<4>::from_data(TensorData::new(numbers(n * o * h * w, 4), [n, o, h, w]), &d);
    let y = match fused {
        true => conv_layer(x.clone(), &conv),
        false => conv.forward(x.clone()),
    };
    let grads = (y.clone() * r).sum().backward();
    let dx = vec_of(x.grad(&grads).unwrap());
    let dw = vec_of(conv.weight.val().grad(&grads).unwrap());
    let db = vec_of(conv.bias.as_ref().unwrap().val().grad(&grads).unwrap());
    [vec_of(y), dx, dw, db]
}

#[test]
fn values_and_gradients_are_burns() {
    // Odd sizes, one channel, single rows and columns, and more images than a group.
    for (dims, o) in [
        ([3, 2, 5, 6], 4),
        ([2, 1, 7, 7], 3),
        ([11, 3, 1, 4], 2),
        ([2, 2, 4, 1], 5),
    ] {
        let fused = run(true, dims, o);
        let burn = run(false, dims, o);
        for (what, (f, b)) in ["y", "dx", "dw", "db"].iter().zip(fused.iter().zip(&burn)) {
            assert_eq!(f.len(), b.len(), "{what} for {dims:?}");
            for (i, (f, b)) in f.iter().zip(b).enumerate() {
                assert!(
                    (f - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{what}[{i}] for {dims:?}: {f} against burn's {b}"
                );
            }
        }
    }
}

/// `sum(y ⊙ r)` on the plain (non-autodiff) device.
fn objective(x: &[f32], w: &[f32], b: &[f32], [n, c, h, wd]: [usize; 4], o: usize) -> f64 {
    let d = Device::flex();
    let conv = layer(c, o, w, b, &d);
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, c, h, wd]), &d);
    let y = vec_of(conv_layer(x, &conv));
    let r = numbers(n * o * h * wd, 4);
    y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum()
}

#[test]
fn gradients_match_finite_differences() {
    let (dims, o) = ([2, 2, 4, 5], 3);
    let [n, c, h, w] = dims;
    let [_, dx, dw, db] = run(true, dims, o);
    let base = [
        numbers(n * c * h * w, 3),
        numbers(o * c * 9, 1),
        numbers(o, 2),
    ];
    // The objective is linear in each of x, w and b, so a large step loses nothing.
    let step = 0.5f32;
    for (which, grad) in [dx, dw, db].iter().enumerate() {
        assert_eq!(grad.len(), base[which].len());
        for i in 0..grad.len() {
            let shifted = |delta: f32| {
                let mut p = base.clone();
                p[which][i] += delta;
                objective(&p[0], &p[1], &p[2], dims, o)
            };
            let fd = (shifted(step) - shifted(-step)) / (2.0 * step as f64);
            let g = grad[i] as f64;
            assert!(
                (g - fd).abs() < 1e-3 * fd.abs().max(1.0),
                "d{which}[{i}]: {g} against {fd}"
            );
        }
    }
}

#[test]
fn the_gradients_have_the_same_bits_on_any_pool() {
    // 20 images: two whole groups and a short one.
    same_on_any_pool(|| run(true, [20, 3, 6, 5], 4));
}

#[test]
fn other_convolutions_stay_burns() {
    // Stride 2: not the layer the fused operation computes, so burn's runs.
    let d = Device::flex();
    let conv = Conv2dConfig::new([1, 2], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&d);
    let x = Tensor::<4>::from_data(TensorData::new(numbers(36, 5), [1, 1, 6, 6]), &d);
    assert_eq!(
        vec_of(conv_layer(x.clone(), &conv)),
        vec_of(conv.forward(x))
    );
}
