//! Dropout masks from a fast counter-based generator, already scaled, in one pass.
//!
//! burn's dropout draws every element through a ChaCha generator on one thread behind a global
//! lock, then multiplies twice (by the 0/1 mask, then by `1 / keep`), a visible share of a
//! teacher's training step (`docs/speed.md`). Here each mask element is a pure function of (seed, call, index):
//! a SplitMix64 hash gives two 32-bit draws per word, each compared with `keep · 2³²`. The mask
//! holds `0` or `1 / keep` and is computed in parallel chunks, and the input is multiplied once.
//! Because an element depends only on its index, the masks are the same for any thread count.
//!
//! The stream is per thread: the training loop calls [`seed_dropout`] at the start of a run and
//! of every epoch, and each dropout layer applied in training takes the next call number. A
//! training run's forward passes all happen on the thread that steps it, which takes the stream
//! over from the thread that seeded it and hands it back ([`DropoutStream`]), so a run's masks
//! depend only on its seed and its own sequence of calls.

use std::cell::Cell;

use rayon::prelude::*;

/// Elements per parallel task of the masks and of the fused dense layer's passes (even, so that
/// a task's mask words never straddle two tasks).
pub(crate) const GRAIN: usize = 1 << 15;

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

thread_local! {
    /// (seed, dropout calls since it was set) of the run this thread is stepping.
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Restarts this thread's dropout stream at `seed`: the masks that follow depend only on it.
pub fn seed_dropout(seed: u64) {
    STREAM.set((seed, 0));
}

/// A thread's dropout stream (seed, calls so far), to hand a run's stream to the thread that
/// steps it and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropoutStream(u64, u64);

impl DropoutStream {
    /// This thread's stream as it stands.
    pub(crate) fn current() -> DropoutStream {
        let (seed, calls) = STREAM.get();
        DropoutStream(seed, calls)
    }

    /// Makes this the thread's stream.
    pub(crate) fn install(self) {
        STREAM.set((self.0, self.1));
    }
}

/// SplitMix64's output function: a bijective 64-bit mix with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of this thread's next dropout call.
pub(crate) fn next_key() -> u64 {
    let (seed, calls) = STREAM.get();
    STREAM.set((seed, calls.wrapping_add(1)));
    mix(mix(seed) ^ calls.wrapping_mul(GOLDEN))
}

/// The mask of one dropout call: element `i` is `1 / keep` with probability `keep`, else 0, as
/// a pure function of (key, i). The fused dense layer applies it inside its own pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MaskDraw {
    keep: f64,
    threshold: u64,
    scale: f32,
    key: u64,
}

impl MaskDraw {
    /// The mask of call `key` keeping each element with probability `keep` (in `(0, 1)`).
    pub(crate) fn new(keep: f64, key: u64) -> MaskDraw {
        MaskDraw {
            keep,
            // `keep < 1`, so the threshold fits in 32 bits; keep is rounded to a multiple of 2⁻³².
            threshold: (keep * 4_294_967_296.0) as u64,
            scale: (1.0 / keep) as f32,
            key,
        }
    }

    /// The probability of keeping an element.
    pub(crate) fn keep(&self) -> f64 {
        self.keep
    }

    /// The value of a kept element, `1 / keep`.
    pub(crate) fn scale(&self) -> f32 {
        self.scale
    }

    fn pick(&self, draw: u64) -> f32 {
        // Without a branch: whether an element is kept is a coin toss, which a branch predictor
        // loses as often as the mask drops.
        let kept = 0u32.wrapping_sub(u32::from(draw < self.threshold));
        f32::from_bits(self.scale.to_bits() & kept)
    }

    /// The first `n` mask values, computed in parallel chunks.
    pub(crate) fn values(&self, n: usize) -> Vec<f32> {
        let mut out = vec![1f32; n];
        par_chunks(&mut out, |start, chunk| self.apply(start, chunk));
        out
    }

    /// Multiplies `values`, the elements from `start` (even) on, by their mask values.
    pub(crate) fn apply(&self, start: usize, values: &mut [f32]) {
        debug_assert!(start.is_multiple_of(2), "a mask word covers two elements");
        let word = |j: usize| mix(self.key.wrapping_add((j as u64).wrapping_mul(GOLDEN)));
        let (first, whole) = (start / 2, values.len() / 2);
        // Whole pairs in a loop of their own (no test for a second element), an odd tail after,
        // so that the loop has no branch and vectorizes (`docs/speed.md`).
        let mut pairs = values.chunks_exact_mut(2);
        for (j, pair) in (&mut pairs).enumerate() {
            let w = word(first + j);
            pair[0] *= self.pick(w & 0xffff_ffff);
            pair[1] *= self.pick(w >> 32);
        }
        if let [last] = pairs.into_remainder() {
            *last *= self.pick(word(first + whole) & 0xffff_ffff);
        }
    }
}

/// Runs `f(start, chunk)` over `values` in chunks of [`GRAIN`] elements, in parallel when
/// there are enough of them to pay for the thread pool.
pub(crate) fn par_chunks(values: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if values.len() < 2 * GRAIN {
        f(0, values);
    } else {
        values
            .par_chunks_mut(GRAIN)
            .enumerate()
            .for_each(|(i, chunk)| f(i * GRAIN, chunk));
    }
}

#[cfg(test)]
fn mask(n: usize, keep: f64, key: u64) -> Vec<f32> {
    MaskDraw::new(keep, key).values(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_is_its_definition_at_any_offset_and_length() {
        // Element i keeps when the matching half of word i / 2 lies below keep · 2³².
        let (keep, key) = (0.3, 7u64);
        let definition = |i: usize| {
            let word = mix(key.wrapping_add(((i / 2) as u64).wrapping_mul(GOLDEN)));
            let half = if i.is_multiple_of(2) {
                word & 0xffff_ffff
            } else {
                word >> 32
            };
            match half < (keep * 4_294_967_296.0) as u64 {
                true => (1.0 / keep) as f32,
                false => 0.0,
            }
        };
        let draw = MaskDraw::new(keep, key);
        for (start, len) in [(0, 1), (0, 6), (2, 7), (40, 1001)] {
            let mut values = vec![-1f32; len];
            draw.apply(start, &mut values);
            for (j, v) in values.iter().enumerate() {
                assert_eq!(
                    v.to_bits(),
                    (-definition(start + j)).to_bits(),
                    "element {}",
                    start + j
                );
            }
        }
    }

    #[test]
    fn masks_keep_the_expected_share_scaled_and_depend_only_on_the_key() {
        let n = 3 * GRAIN + 5; // parallel chunks and an odd tail
        for keep in [0.5, 0.8, 0.2] {
            let m = mask(n, keep, 42);
            let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            assert!((kept - keep).abs() < 0.01, "keep {keep}: kept {kept}");
            let scale = (1.0 / keep) as f32;
            assert!(m.iter().all(|&v| v == 0.0 || v == scale));
            // The serial path gives the same prefix as the parallel one.
            assert_eq!(mask(2 * GRAIN - 1, keep, 42)[..], m[..2 * GRAIN - 1]);
        }
        assert_ne!(mask(1000, 0.5, 1), mask(1000, 0.5, 2));
        // Neighbouring elements (the two halves of a word) are not tied together.
        let m = mask(100_000, 0.5, 3);
        let same = m.chunks(2).filter(|p| p[0] == p[1]).count() as f64 / 50_000.0;
        assert!((same - 0.5).abs() < 0.02, "pairs agree {same}");
    }

    #[test]
    fn the_stream_restarts_at_its_seed() {
        seed_dropout(5);
        let a = (next_key(), next_key());
        seed_dropout(5);
        assert_eq!(a, (next_key(), next_key()));
        assert_ne!(a.0, a.1);
        seed_dropout(6);
        assert_ne!(a.0, next_key());
    }
}
