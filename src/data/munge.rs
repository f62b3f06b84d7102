//! MUNGE (Buciluǎ, Caruana & Niculescu-Mizil, "Model Compression", KDD 2006): synthetic rows
//! for a transfer set, drawn near the training rows so that they stay on the data's manifold.
//!
//! Each pass visits every training row `e` with its nearest neighbour `e'` (Euclidean, on
//! standardized features) and, for each attribute with probability `swap`, moves both towards
//! each other: a numeric value is drawn from a normal around the other's value with standard
//! deviation `|e_a - e'_a| / spread`; a text attribute (a one-hot group) is swapped whole. The
//! modified `e` is the new row.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::table::Standardize;
use crate::error::{Error, Result};

/// Rows whose distances to every row are computed at once: bounds memory at this many times
/// the row count of floats.
const BLOCK: usize = 512;

/// The most rows a neighbour is searched among. A larger table is cut into seeded random pools
/// of at most this many rows, each row's neighbour found within its pool: the search costs
/// rows × pool instead of rows², and on so many rows a near neighbour serves as well.
const MAX_POOL: usize = 65_536;

/// How synthetic rows are drawn, as checked settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Munge {
    /// Synthetic rows per training row (the synthetic set is `times` times the training set).
    pub times: usize,
    /// Probability that an attribute is moved towards the neighbour's, in (0, 1].
    pub swap: f64,
    /// Divides the distance to the neighbour to give the spread of a drawn value, > 0.
    pub spread: f64,
}

impl Munge {
    /// The defaults: swap probability 0.5, spread divisor 10.
    pub const SWAP: f64 = 0.5;
    /// See [`Munge::SWAP`].
    pub const SPREAD: f64 = 10.0;

    /// Checks the settings.
    pub fn new(times: usize, swap: f64, spread: f64) -> Result<Munge> {
        if times == 0 || times > 100 {
            return Err(Error::config(format!(
                "munge:K takes K from 1 to 100 synthetic rows per training row, got {times}"
            )));
        }
        if !(swap > 0.0 && swap <= 1.0) {
            return Err(Error::config(format!(
                "the MUNGE swap probability must be in (0, 1], got {swap}"
            )));
        }
        if !(spread > 0.0 && spread.is_finite()) {
            return Err(Error::config(format!(
                "the MUNGE spread must be a positive number, got {spread}"
            )));
        }
        Ok(Munge {
            times,
            swap,
            spread,
        })
    }

    /// `times` synthetic rows per row of `rows` (`width` raw features each, row-major), drawn
    /// with `seed`. `groups` lists the one-hot groups as (first feature, width); other
    /// features are numeric.
    ///
    /// ```
    /// use distill::data::{Munge, Standardize};
    ///
    /// let rows = [1.0, 2.0, 1.5, 2.5, 9.0, 9.0, 9.5, 8.0];
    /// let stats = Standardize::fit(&rows, 2);
    /// let m = Munge::new(3, Munge::SWAP, Munge::SPREAD)?;
    /// let (device, _) = distill::compute::compute_device();
    /// let synthetic = m.draw(&rows, 2, &stats, &[], 7, &device);
    /// assert_eq!(synthetic.len(), 3 * rows.len());
    /// assert_eq!(synthetic, m.draw(&rows, 2, &stats, &[], 7, &device)); // seeded
    /// # Ok::<(), distill::Error>(())
    /// ```
    pub fn draw(
        &self,
        rows: &[f32],
        width: usize,
        standardize: &Standardize,
        groups: &[(usize, usize)],
        seed: u64,
        device: &Device,
    ) -> Vec<f32> {
        let n = rows.len() / width.max(1);
        if n < 2 {
            return rows.repeat(self.times);
        }
        let neighbour = pooled_neighbours(rows, width, standardize, (seed, MAX_POOL), device);
        let mut group_of = vec![None; width];
        for &(start, len) in groups {
            for g in group_of.iter_mut().skip(start).take(len) {
                *g = Some((start, len));
            }
        }
        let mut rng = StdRng::seed_from_u64(seed ^ 0x004d_554e_4745);
        let mut out = Vec::with_capacity(rows.len() * self.times);
        for _ in 0..self.times {
            for (i, &j) in neighbour.iter().enumerate() {
                let e = &rows[i * width..(i + 1) * width];
                let other = &rows[j * width..(j + 1) * width];
                out.extend(self.blend(e, other, &group_of, &mut rng));
            }
        }
        out
    }

    /// `e` with each attribute moved towards `other`'s with probability `swap`.
    fn blend(
        &self,
        e: &[f32],
        other: &[f32],
        group_of: &[Option<(usize, usize)>],
        rng: &mut StdRng,
    ) -> Vec<f32> {
        let mut row = e.to_vec();
        let mut a = 0;
        while a < e.len() {
            match group_of[a] {
                Some((start, len)) => {
                    if rng.random_bool(self.swap) {
                        row[start..start + len].copy_from_slice(&other[start..start + len]);
                    }
                    a = start + len;
                }
                None => {
                    if rng.random_bool(self.swap) {
                        let sd = f64::from((e[a] - other[a]).abs()) / self.spread;
                        row[a] = match Normal::new(f64::from(other[a]), sd) {
                            Ok(d) if sd > 0.0 => d.sample(rng) as f32,
                            _ => other[a],
                        };
                    }
                    a += 1;
                }
            }
        }
        row
    }
}

/// The index of each row's nearest other row within its pool: all rows, or where there are more
/// than `max_pool`, seeded random pools of at most that many.
fn pooled_neighbours(
    rows: &[f32],
    width: usize,
    standardize: &Standardize,
    (seed, max_pool): (u64, usize),
    device: &Device,
) -> Vec<usize> {
    let n = rows.len() / width;
    if n <= max_pool {
        return nearest_neighbours(rows, width, standardize, device);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x0050_4f4f_4c53));
    let pools = n.div_ceil(max_pool);
    let mut out = vec![0; n];
    for pool in order.chunks(n.div_ceil(pools)) {
        let mut sub = Vec::with_capacity(pool.len() * width);
        for &i in pool {
            sub.extend_from_slice(&rows[i * width..(i + 1) * width]);
        }
        for (k, j) in nearest_neighbours(&sub, width, standardize, device)
            .into_iter()
            .enumerate()
        {
            out[pool[k]] = pool[j];
        }
    }
    out
}

/// The index of each row's nearest other row, by Euclidean distance between standardized rows,
/// computed block by block as `|a|² + |b|² - 2 a·b` with one matrix product per block. Ties go
/// to the lower index.
fn nearest_neighbours(
    rows: &[f32],
    width: usize,
    standardize: &Standardize,
    device: &Device,
) -> Vec<usize> {
    let n = rows.len() / width;
    let z: Vec<f32> = rows
        .iter()
        .enumerate()
        .map(|(k, &v)| (v - standardize.mean[k % width]) * standardize.scale[k % width])
        .collect();
    let norms: Vec<f32> = z
        .chunks_exact(width)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let all = Tensor::<2>::from_data(TensorData::new(z.clone(), [n, width]), device);
    let all_t = all.clone().transpose();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let block = all.clone().slice(start..end);
        let dots: Vec<f32> = block
            .matmul(all_t.clone())
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        for (r, row) in dots.chunks_exact(n).enumerate() {
            let i = start + r;
            let mut best = (f32::INFINITY, if i == 0 { 1 } else { 0 });
            for (j, &d) in row.iter().enumerate() {
                let dist = norms[i] + norms[j] - 2.0 * d;
                if j != i && dist < best.0 {
                    best = (dist, j);
                }
            }
            out.push(best.1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(width: usize) -> Standardize {
        Standardize {
            mean: vec![0.0; width],
            scale: vec![1.0; width],
        }
    }

    #[test]
    fn neighbours_are_the_nearest_other_rows() {
        let rows = [0.0, 0.0, 10.0, 10.0, 0.5, 0.0, 10.0, 11.0, 3.0, 0.0];
        let nn = nearest_neighbours(&rows, 2, &plain(2), &Device::flex());
        assert_eq!(nn, [2, 3, 0, 1, 2]);
    }

    #[test]
    fn rows_are_drawn_between_neighbours_seeded_and_one_hot_groups_stay_whole() {
        // Feature 0 numeric, features 1..3 a one-hot group.
        let rows = [0.0, 1.0, 0.0, 10.0, 0.0, 1.0, 1.0, 1.0, 0.0, 11.0, 0.0, 1.0];
        let m = Munge::new(3, 0.5, 10.0).unwrap();
        let device = Device::flex();
        let a = m.draw(&rows, 3, &plain(3), &[(1, 2)], 7, &device);
        assert_eq!(a.len(), 3 * rows.len());
        assert_eq!(a, m.draw(&rows, 3, &plain(3), &[(1, 2)], 7, &device));
        assert_ne!(a, m.draw(&rows, 3, &plain(3), &[(1, 2)], 8, &device));
        for r in a.chunks_exact(3) {
            assert_eq!(r[1] + r[2], 1.0, "{r:?}");
            assert!((-2.0..=13.0).contains(&r[0]), "{r:?}");
        }
        assert!(Munge::new(0, 0.5, 10.0).is_err());
        // Rows in pools of at most 5: each row's neighbour is in its own pool, and is the
        // nearest row of that pool.
        let line: Vec<f32> = (0..16).map(|i| (i * i) as f32).collect();
        let nn = pooled_neighbours(&line, 1, &plain(1), (3, 5), &device);
        let all = nearest_neighbours(&line, 1, &plain(1), &device);
        assert_ne!(nn, all, "pools of 5 found every global neighbour");
        assert!(nn.iter().enumerate().all(|(i, &j)| j != i && j < 16));
        assert!(Munge::new(2, 0.0, 10.0).is_err());
        assert!(Munge::new(2, 0.5, 0.0).is_err());
    }
}
