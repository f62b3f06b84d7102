//! Tests of the fused pool and ReLU: values and gradients against burn's composition, ties
//! included, and finite differences.

use super::super::test_support::{self, vec_of};
use super::*;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, TensorData};

/// Deterministic values in `[-1, 1)`; with `levels`, rounded to that many steps, so that
/// windows hold equal values.
fn numbers(n: usize, seed: u64, levels: Option<f32>) -> Vec<f32> {
    let v = test_support::numbers(n, seed);
    v.into_iter()
        .map(|v| levels.map_or(v, |l| (v * l).round() / l))
        .collect()
}

/// Output and the gradient of `sum(y ⊙ r)` for x, fused or composed.
fn run(fused: bool, dims: [usize; 4], x: &[f32]) -> [Vec<f32>; 2] {
    let d = Device::flex().autodiff();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &d).require_grad();
    let y = match fused {
        true => pool_relu(x.clone(), &pool),
        false => relu(pool.forward(x.clone())),
    };
    let r = Tensor::<4>::from_data(
        TensorData::new(numbers(y.shape().num_elements(), 9, None), y.dims()),
        &d,
    );
    let grads = (y.clone() * r).sum().backward();
    [vec_of(y), vec_of(x.grad(&grads).unwrap())]
}

#[test]
fn values_and_gradients_are_burns() {
    // Odd sides (the last row and column belong to no window), a side of 1 (no window at
    // all), and values on a coarse grid, so that windows tie and zeros meet the ReLU.
    for dims in [[2, 3, 6, 8], [3, 2, 7, 5], [1, 2, 1, 4], [4, 1, 5, 5]] {
        for levels in [None, Some(2.0)] {
            let x = numbers(dims.iter().product(), 3, levels);
            let (fused, burn) = (run(true, dims, &x), run(false, dims, &x));
            assert_eq!(fused, burn, "{dims:?}, levels {levels:?}");
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dims = [2, 2, 4, 6];
    // Evenly spaced values in a scrambled order: apart by 2 / 96, none zero.
    let len: usize = dims.iter().product();
    let x: Vec<f32> = (0..len)
        .map(|i| ((i * 37 % len) as f32 + 0.5) / len as f32 * 2.0 - 1.0)
        .collect();
    let [_, grad] = run(true, dims, &x);
    let objective = |x: &[f32]| {
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &Device::flex());
        let y = vec_of(pool_relu(t, &MaxPool2dConfig::new([2, 2]).init()));
        let r = numbers(y.len(), 9, None);
        y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
    };
    // A step small enough to change no window's winner or the ReLU's side.
    let h = 1e-3f32;
    for i in 0..x.len() {
        let shifted = |delta: f32| {
            let mut p = x.clone();
            p[i] += delta;
            objective(&p)
        };
        let fd = (shifted(h) - shifted(-h)) / (2.0 * h as f64);
        assert!(
            (grad[i] as f64 - fd).abs() < 1e-2,
            "dx[{i}]: {} against {fd}",
            grad[i]
        );
    }
}

#[test]
fn other_pools_stay_burns() {
    let d = Device::flex();
    let pool = MaxPool2dConfig::new([3, 3]).init();
    let x = Tensor::<4>::from_data(TensorData::new(numbers(36, 5, None), [1, 1, 6, 6]), &d);
    assert_eq!(
        vec_of(pool_relu(x.clone(), &pool)),
        vec_of(relu(pool.forward(x)))
    );
}
