//! Runs an element-wise loop compiled for the widest vectors this CPU has.
//!
//! The release build targets baseline x86-64, so the compiler vectorizes our own loops with
//! 4-wide SSE only, while gemm picks AVX-512 or AVX2 at run time. Inlining a loop into a
//! function built with those features lets the compiler vectorize it 16 or 8 wide. Only the
//! vector width changes: the same IEEE operations in the same order, so the results are
//! bit-identical on every path (Rust never contracts a multiply and an add into a fused
//! multiply-add on its own). The momentum update, which streams megabytes, gained from it; the
//! dense layer's element-wise passes and the dropout masks did not (`docs/speed.md`).

/// Calls `f`, inlined into a copy built for AVX-512 (the F, DQ, BW and VL subsets every
/// AVX-512 server CPU has) or AVX2 where the CPU has them.
///
/// `f` should be a small closure holding one loop: it is inlined into that copy, whose
/// compiler features then apply to the loop. It should capture its scalars by value (`move`):
/// a scalar read through a reference under a condition was loaded with a masked gather in the
/// AVX-512 copy, which made it slower than the plain SSE loop (`docs/speed.md`).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has these four AVX-512 subsets, checked just above.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl")]
#[inline]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::wide;

    #[test]
    fn the_wide_path_gives_the_plain_loops_bits() {
        // Values whose products and sums round, including subnormals and signed zeros.
        let g: Vec<f32> = (0..10_007)
            .map(|i| ((i as f32) * 0.618_034).sin() * 10f32.powi((i % 60) - 40))
            .collect();
        let step = |w: &mut [f32], v: &mut [f32]| {
            for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(&g) {
                *v = g + *v * 0.9;
                *w -= *v * 0.05;
            }
        };
        let (mut w1, mut v1) = (g.iter().map(|x| x * 3.0).collect::<Vec<_>>(), g.clone());
        let (mut w2, mut v2) = (w1.clone(), v1.clone());
        for _ in 0..3 {
            step(&mut w1, &mut v1);
            wide(|| step(&mut w2, &mut v2));
        }
        let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&w1), bits(&w2));
        assert_eq!(bits(&v1), bits(&v2));
    }
}
