//! What the fused operations' tests share: deterministic inputs, tensor values, and running a
//! computation on pools of several sizes.

use burn::tensor::Tensor;

/// Deterministic values in `[-1, 1)` (a linear congruential sequence from `seed`).
pub(super) fn numbers(n: usize, seed: u64) -> Vec<f32> {
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

/// A tensor's values in row-major order.
pub(super) fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

/// Runs `f` on pools of 1, 2, 3 and 4 threads and checks that every pool gives the one-thread
/// result exactly.
pub(super) fn same_on_any_pool<T: PartialEq + std::fmt::Debug + Send>(f: impl Fn() -> T + Sync) {
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(&f)
    };
    let one = on(1);
    for threads in [2, 3, 4] {
        assert_eq!(on(threads), one, "{threads} threads against 1");
    }
}
