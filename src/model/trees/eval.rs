//! Scores of a block of rows: every tree in file order for each row, then onnxruntime's
//! finishing rules.
//!
//! The loop runs tree by tree over the whole block, so that one tree's nodes stay in cache
//! while every row of the block walks it, and [`LANES`] rows walk each tree in lockstep, so
//! that their memory loads overlap. Each row's sums still add the trees in file order, so a
//! row's result does not depend on the block it was in or on the thread that ran it.

use super::forest::{BRANCH, Forest, Post};

/// Rows that walk a tree together.
const LANES: usize = 8;

impl Forest {
    /// One step from slot `i` for a row without NaN. Children sit in slots after their
    /// parent's and a leaf names itself, so this moves forward or stays at a leaf. With no NaN
    /// in the row, `x > t` is exactly "the canonical `x <= t` fails".
    #[inline]
    fn step(&self, i: u32, row: &[f32]) -> u32 {
        let s = self.slots[i as usize];
        s.child + u32::from(row[s.feature as usize] > s.threshold)
    }

    /// The leaves `LANES` rows without NaN reach from `root`, walking in lockstep until none
    /// moves.
    #[inline]
    fn leaves_fast(&self, root: u32, rows: &[&[f32]; LANES]) -> [usize; LANES] {
        let mut at = [root; LANES];
        loop {
            let mut moved = false;
            for (i, row) in at.iter_mut().zip(rows) {
                let next = self.step(*i, row);
                moved |= next != *i;
                *i = next;
            }
            if !moved {
                return at.map(|i| self.leaf_of[i as usize] as usize);
            }
        }
    }

    /// The leaf a row without NaN reaches from `root`.
    fn leaf_fast(&self, root: u32, row: &[f32]) -> usize {
        let mut i = root;
        loop {
            let next = self.step(i, row);
            if next == i {
                return self.leaf_of[i as usize] as usize;
            }
            i = next;
        }
    }

    /// The leaf any row reaches from `root`, through the tests as the file states them.
    fn leaf_exact(&self, root: u32, row: &[f32]) -> usize {
        let mut i = root as usize;
        loop {
            let s = self.slots[i];
            if self.leaf_of[i] != BRANCH {
                return self.leaf_of[i] as usize;
            }
            let t = self.tests[i];
            let x = row[s.feature as usize];
            let holds = t.mode.holds(x, t.threshold) || (t.nan_true && x.is_nan());
            i = (s.child + u32::from(holds != t.true_first)) as usize;
        }
    }

    /// Adds leaf `leaf`'s weights to one row's class sums.
    #[inline]
    fn add(&self, leaf: usize, sums: &mut [f32]) {
        let (a, b) = (
            self.leaf_start[leaf] as usize,
            self.leaf_start[leaf + 1] as usize,
        );
        if self.dense {
            for (s, w) in sums.iter_mut().zip(&self.weight_value[a..b]) {
                *s += w;
            }
        } else {
            for (&c, &w) in self.weight_class[a..b].iter().zip(&self.weight_value[a..b]) {
                if let Some(s) = sums.get_mut(c as usize) {
                    *s += w;
                }
            }
        }
    }

    /// Summed leaf weights of `rows` (`[m, width]`) into `sums` (`[m, classes]`, zeroed by the
    /// caller), and for each row whether some leaf gave class 1 a weight.
    pub(super) fn sum_block(
        &self,
        rows: &[f32],
        width: usize,
        sums: &mut [f32],
        second: &mut [bool],
    ) {
        let exact = !self.fast || rows.iter().any(|v| v.is_nan());
        let c = self.classes;
        let lanes = if exact { 0 } else { rows.len() / width / LANES };
        let (rows_l, rows_r) = rows.split_at(lanes * LANES * width);
        let (sums_l, sums_r) = sums.split_at_mut(lanes * LANES * c);
        let (second_l, second_r) = second.split_at_mut(lanes * LANES);
        for &root in &self.roots {
            for ((x, s), sec) in rows_l
                .chunks_exact(LANES * width)
                .zip(sums_l.chunks_exact_mut(LANES * c))
                .zip(second_l.chunks_exact_mut(LANES))
            {
                let group: [&[f32]; LANES] =
                    std::array::from_fn(|k| &x[k * width..(k + 1) * width]);
                let leaves = self.leaves_fast(root, &group);
                for ((&leaf, s), sec) in leaves.iter().zip(s.chunks_exact_mut(c)).zip(sec) {
                    self.add(leaf, s);
                    *sec |= self.leaf_second[leaf];
                }
            }
            for ((row, s), sec) in rows_r
                .chunks_exact(width)
                .zip(sums_r.chunks_exact_mut(c))
                .zip(second_r.iter_mut())
            {
                let leaf = if exact {
                    self.leaf_exact(root, row)
                } else {
                    self.leaf_fast(root, row)
                };
                self.add(leaf, s);
                *sec |= self.leaf_second[leaf];
            }
        }
    }

    /// One row's output from its sums, by onnxruntime's rules for base values and for models
    /// with two classes (which may carry weights for one class only).
    pub(super) fn finish(&self, sums: &mut [f32], second: bool, out: &mut [f32]) {
        let base = &self.base;
        if self.classes > 2 {
            if base.len() == sums.len() {
                sums.iter_mut().zip(base).for_each(|(s, b)| *s += b);
            }
            transform(self.post, sums);
            out.copy_from_slice(sums);
            return;
        }
        let (mut s0, mut s1) = (sums[0], sums[1]);
        match base.len() {
            2 if second => {
                // onnxruntime derives both scores from class 0's sum and base_values[1] here.
                s1 = base[1] + s0;
                s0 = -s1;
            }
            2 => {
                s0 += base[0];
                s1 += base[1];
            }
            1 => s0 += base[0],
            _ => {}
        }
        let pair = if second || base.len() == 2 {
            let mut pair = [s0, s1];
            transform(self.post, &mut pair);
            pair
        } else if self.binary_case && self.all_positive {
            [1.0 - s0, s0]
        } else if self.post == Post::Logistic {
            [logistic(-s0), logistic(s0)]
        } else {
            [-s0, s0]
        };
        out.copy_from_slice(&pair);
    }
}

/// The post transform of two or more scores, in f32 and in onnxruntime's order of operations.
fn transform(post: Post, s: &mut [f32]) {
    match post {
        Post::None => {}
        Post::Logistic => s.iter_mut().for_each(|v| *v = logistic(*v)),
        Post::Probit => s.iter_mut().for_each(|v| *v = probit(*v)),
        Post::Softmax => {
            let max = s.iter().fold(-f32::MAX, |m, &v| if v > m { v } else { m });
            let mut sum = 0.0f32;
            for v in s.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            s.iter_mut().for_each(|v| *v /= sum);
        }
        Post::SoftmaxZero => {
            // Scores of exactly zero (classes no leaf scored) stay out of the normalization.
            let max = s.iter().fold(-f32::MAX, |m, &v| if v > m { v } else { m });
            let scale = (-max).exp();
            let mut sum = 0.0f32;
            for v in s.iter_mut() {
                if *v > 1e-7 || *v < -1e-7 {
                    *v = (*v - max).exp();
                    sum += *v;
                } else {
                    *v *= scale;
                }
            }
            s.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// The logistic function, computed on |x| so that it never overflows.
fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// The probit (inverse normal CDF) through Winitzki's closed-form approximation of the inverse
/// error function, the one onnxruntime uses, so that both give the same values.
fn probit(p: f32) -> f32 {
    const A: f32 = 0.147;
    // onnxruntime's rounded value of pi, kept so that both compute the same constant.
    #[allow(clippy::approx_constant)]
    const PI: f32 = 3.14159;
    let x = 2.0 * p - 1.0;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (PI * A) + 0.5 * ln;
    let inv = sign * (-v + (v * v - ln / A).sqrt()).sqrt();
    std::f32::consts::SQRT_2 * inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_is_symmetric_and_finite() {
        assert_eq!(logistic(0.0), 0.5);
        assert!((logistic(2.0) + logistic(-2.0) - 1.0).abs() < 1e-7);
        assert_eq!(logistic(-1e30), 0.0);
        assert_eq!(logistic(1e30), 1.0);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_roughly() {
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.959_964).abs() < 5e-3);
        assert!((probit(0.025) + 1.959_964).abs() < 5e-3);
    }

    #[test]
    fn softmax_sums_to_one_and_softmax_zero_skips_zeros() {
        let mut s = [1.0f32, 2.0, 3.0];
        transform(Post::Softmax, &mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[2] > s[1] && s[1] > s[0]);
        let mut z = [0.0f32, 2.0, 2.0];
        transform(Post::SoftmaxZero, &mut z);
        assert!(z[0] < 1e-6 && (z[1] - 0.5).abs() < 1e-6);
    }
}
