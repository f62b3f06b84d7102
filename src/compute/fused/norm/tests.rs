//! Tests of the fused batch norm: values, gradients and running statistics against burn's
//! `BatchNorm`, finite differences, and the same bits on any pool.

use super::super::test_support::{self, same_on_any_pool, vec_of};
use super::*;
use burn::nn::BatchNormConfig;
use burn::tensor::{Device, TensorData};

/// Deterministic values, shifted per position so that channels are not already normalized.
fn numbers(n: usize, seed: u64) -> Vec<f32> {
    let v = test_support::numbers(n, seed);
    v.iter()
        .enumerate()
        .map(|(i, v)| v + (i % 3) as f32 * 0.3)
        .collect()
}

/// A batch norm of `c` channels with set γ and β and non-trivial running statistics.
fn layer(c: usize, gamma: &[f32], d: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c).init(d);
    let vector = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [c]), d);
    bn.gamma = burn::module::Param::from_tensor(vector(gamma.to_vec()));
    let beta: Vec<f32> = numbers(c, 8).iter().map(|v| v * 0.5).collect();
    bn.beta = burn::module::Param::from_tensor(vector(beta));
    bn.running_mean = burn::module::RunningState::new(vector(numbers(c, 6)));
    bn.running_var = burn::module::RunningState::new(vector(vec![2.0; c]));
    bn
}

/// Output, gradients of `sum(y ⊙ r)` for x, γ and β, and the running mean and variance after
/// the step, fused or burn's.
fn run(fused: bool, dims: [usize; 4]) -> [Vec<f32>; 6] {
    let d = Device::flex().autodiff();
    let [n, c, h, w] = dims;
    let bn = layer(c, &numbers(c, 7), &d);
    let x =
        Tensor::<4>::from_data(TensorData::new(numbers(n * c * h * w, 3), dims), &d).require_grad();
    let y = match fused {
        true => batch_norm_layer(x.clone(), &bn),
        false => bn.forward(x.clone()),
    };
    let r = Tensor::<4>::from_data(TensorData::new(numbers(n * c * h * w, 4), dims), &d);
    let grads = (y.clone() * r).sum().backward();
    let grad = |t: Tensor<1>| vec_of(t.grad(&grads).unwrap());
    [
        vec_of(y),
        vec_of(x.grad(&grads).unwrap()),
        grad(bn.gamma.val()),
        grad(bn.beta.val()),
        vec_of(bn.running_mean.value()),
        vec_of(bn.running_var.value()),
    ]
}

#[test]
fn values_gradients_and_running_statistics_are_burns() {
    for dims in [[4, 3, 5, 6], [2, 1, 1, 7], [9, 2, 3, 3]] {
        let (fused, burn) = (run(true, dims), run(false, dims));
        let names = ["y", "dx", "dgamma", "dbeta", "running mean", "running var"];
        for (what, (f, b)) in names.iter().zip(fused.iter().zip(&burn)) {
            assert_eq!(f.len(), b.len(), "{what} for {dims:?}");
            for (i, (f, b)) in f.iter().zip(b).enumerate() {
                assert!(
                    (f - b).abs() <= 2e-5 * (1.0 + b.abs()),
                    "{what}[{i}] for {dims:?}: {f} against burn's {b}"
                );
            }
        }
    }
}

#[test]
fn inference_stays_burns() {
    let d = Device::flex();
    let bn = layer(2, &[1.5, 0.5], &d);
    let x = Tensor::<4>::from_data(TensorData::new(numbers(96, 3), [3, 2, 4, 4]), &d);
    assert_eq!(
        vec_of(batch_norm_layer(x.clone(), &bn)),
        vec_of(bn.forward(x))
    );
    assert_eq!(
        vec_of(bn.running_mean.value()),
        numbers(2, 6),
        "no update in inference"
    );
}

#[test]
fn gradients_match_finite_differences() {
    let dims = [3, 2, 2, 3];
    let [n, c, h, w] = dims;
    let [_, dx, dgamma, dbeta, ..] = run(true, dims);
    let base = [numbers(n * c * h * w, 3), numbers(c, 7)];
    let objective = |x: &[f32], gamma: &[f32], shift: f32| {
        let d = Device::flex().autodiff();
        let mut bn = layer(c, gamma, &d);
        let beta = vec_of(bn.beta.val())
            .iter()
            .map(|b| b + shift)
            .collect::<Vec<_>>();
        let beta = Tensor::<1>::from_data(TensorData::new(beta, [c]), &d);
        bn.beta = burn::module::Param::from_tensor(beta);
        let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &d);
        let y = vec_of(batch_norm_layer(x, &bn));
        let r = numbers(n * c * h * w, 4);
        y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
    };
    let h = 1e-2f32;
    let check = |what: &str, i: usize, g: f32, up: f64, down: f64| {
        let fd = (up - down) / (2.0 * h as f64);
        assert!(
            (g as f64 - fd).abs() < 2e-2 * fd.abs().max(0.1),
            "{what}[{i}]: {g} against {fd}"
        );
    };
    for i in 0..dx.len() {
        let at = |delta: f32| {
            let mut x = base[0].clone();
            x[i] += delta;
            objective(&x, &base[1], 0.0)
        };
        check("dx", i, dx[i], at(h), at(-h));
    }
    for i in 0..c {
        let at = |delta: f32| {
            let mut g = base[1].clone();
            g[i] += delta;
            objective(&base[0], &g, 0.0)
        };
        check("dgamma", i, dgamma[i], at(h), at(-h));
    }
    // β's gradient per channel, all channels shifted at once: compare the sum.
    let total: f32 = dbeta.iter().sum();
    check(
        "dbeta (sum)",
        0,
        total,
        objective(&base[0], &base[1], h),
        objective(&base[0], &base[1], -h),
    );
}

#[test]
fn the_gradients_have_the_same_bits_on_any_pool() {
    same_on_any_pool(|| run(true, [10, 5, 3, 4]));
}
