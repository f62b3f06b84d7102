//! Augmentation: the paper's input jitter (random translations with zero fill), and mixup
//! (blends of two images of a batch).

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};

use super::dataset::ImageShape;
use super::split::Split;

/// Random translations of up to `max_shift` pixels in each direction, with zero fill: the
/// paper's input jitter. Every channel of an image moves by the same shift. Returns
/// `[indices.len(), C*H*W]` floats in `[0, 1]`.
pub fn jittered_batch(
    split: &Split,
    shape: ImageShape,
    indices: &[usize],
    max_shift: usize,
    rng: &mut StdRng,
) -> Vec<f32> {
    let shifts: Vec<Shift> = indices
        .iter()
        .map(|_| Shift::draw(max_shift, rng))
        .collect();
    shifted_batch(split, shape, indices, &shifts)
}

/// A translation by `dy` rows and `dx` columns (positive: down and right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shift {
    /// Rows down.
    pub dy: i8,
    /// Columns right.
    pub dx: i8,
}

impl Shift {
    /// A shift of up to `max_shift` pixels each way, uniform over the square (rows first).
    /// `max_shift` is at most 127, which every validated jitter is.
    pub fn draw(max_shift: usize, rng: &mut StdRng) -> Shift {
        // Drawn as i64, as before shifts were stored: a narrower type draws other values
        // from the same stream, and every jittered run would change.
        let m = max_shift.min(i8::MAX as usize) as i64;
        let dy = rng.random_range(-m..=m) as i8;
        let dx = rng.random_range(-m..=m) as i8;
        Shift { dy, dx }
    }
}

/// The images at `indices`, each translated by its shift in `shifts`, with zero fill, as
/// `[indices.len(), C*H*W]` floats in `[0, 1]`. Every channel of an image moves alike.
pub fn shifted_batch(
    split: &Split,
    shape: ImageShape,
    indices: &[usize],
    shifts: &[Shift],
) -> Vec<f32> {
    // A table has no geometry to shift: its rows go through unchanged (training refuses
    // jitter on tables before it gets here).
    let Some(bytes) = split.bytes() else {
        return split.subset(indices).floats();
    };
    let (rows, cols) = (shape.height as i64, shape.width as i64);
    let plane = shape.height * shape.width;
    let pixels = shape.len();
    let mut out = vec![0f32; indices.len() * pixels];
    for ((&i, shift), dst) in indices.iter().zip(shifts).zip(out.chunks_exact_mut(pixels)) {
        let src = &bytes[i * pixels..(i + 1) * pixels];
        let (dy, dx) = (shift.dy as i64, shift.dx as i64);
        for (src, dst) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
            for r in 0..rows {
                let sr = r - dy;
                if sr < 0 || sr >= rows {
                    continue;
                }
                for c in 0..cols {
                    let sc = c - dx;
                    if sc < 0 || sc >= cols {
                        continue;
                    }
                    dst[(r * cols + c) as usize] = src[(sr * cols + sc) as usize] as f32 / 255.0;
                }
            }
        }
    }
    out
}

/// Mixup within a batch (Zhang et al., 2018): each image of `images` (`[n, pixels]`, row by
/// row) becomes `w * itself + (1 - w) * partner`, its partner drawn from the same batch and
/// `w` from Beta(`alpha`, `alpha`) folded into [0.5, 1], so that every blend is mostly its own
/// image and keeps that image's label for any hard-label term. A teacher run on the blends
/// says what the mixture is; that, not the label, is what a distilled student learns from.
/// `alpha` must be finite and above 0 (the settings check it).
pub fn mix_batch(images: &mut [f32], pixels: usize, alpha: f64, rng: &mut StdRng) {
    let n = images.len() / pixels.max(1);
    let beta = Beta::new(alpha, alpha).expect("mixup alpha is checked to be above 0");
    let mut partners: Vec<usize> = (0..n).collect();
    partners.shuffle(rng);
    let source = images.to_vec();
    for (dst, &j) in images.chunks_exact_mut(pixels).zip(&partners) {
        let w = beta.sample(rng);
        let w = w.max(1.0 - w) as f32;
        let other = &source[j * pixels..(j + 1) * pixels];
        for (d, &o) in dst.iter_mut().zip(other) {
            *d = w * *d + (1.0 - w) * o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn jitter_shifts_within_bounds_and_zero_fills() {
        let split = Split::new((0..9).map(|v| v as u8 * 10 + 10).collect(), vec![0], 9);
        let mut rng = StdRng::seed_from_u64(1);
        let mut saw_shift = false;
        for _ in 0..50 {
            let out = jittered_batch(&split, ImageShape::gray(3, 3), &[0], 1, &mut rng);
            let orig = split.floats();
            saw_shift |= out != orig;
            // Every non-zero output pixel is some input pixel, and the centre always survives a
            // shift of one.
            assert!(out.iter().all(|v| *v == 0.0 || orig.contains(v)));
            assert!(out.contains(&orig[4]));
        }
        assert!(saw_shift);
        assert_eq!(
            jittered_batch(&split, ImageShape::gray(3, 3), &[0], 0, &mut rng),
            split.floats()
        );
    }

    #[test]
    fn mixup_blends_each_image_mostly_with_itself_and_replays_with_its_seed() {
        // One-pixel images 0, 10, 20, 30: each blend must lie between its own value and some
        // image's of the batch, at least half of it its own.
        let orig = [0.0f32, 10.0, 20.0, 30.0];
        let mut rng = StdRng::seed_from_u64(7);
        let mut moved = 0;
        for _ in 0..50 {
            let mut v = orig.to_vec();
            mix_batch(&mut v, 1, 1.0, &mut rng);
            for (&own, &x) in orig.iter().zip(&v) {
                let own_share = |other: f32| {
                    if other == own {
                        (x == own).then_some(1.0)
                    } else {
                        Some((x - other) / (own - other))
                    }
                };
                assert!(
                    orig.iter()
                        .filter_map(|&o| own_share(o))
                        .any(|w| (0.5 - 1e-6..=1.0 + 1e-6).contains(&w)),
                    "{own} became {x}"
                );
                moved += usize::from(x != own);
            }
        }
        assert!(moved > 100, "mixup left {moved} of 200 images as they were");
        let draw = |seed| {
            let mut v = orig.to_vec();
            mix_batch(&mut v, 1, 0.4, &mut StdRng::seed_from_u64(seed));
            v
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn jitter_moves_every_channel_by_the_same_shift() {
        // Two channels holding the same 3x3 picture come out identical after any shift.
        let picture: Vec<u8> = (0..9).map(|v| v as u8 * 20 + 5).collect();
        let split = Split::new([picture.clone(), picture].concat(), vec![0], 18);
        let mut rng = StdRng::seed_from_u64(3);
        let shape = ImageShape {
            channels: 2,
            height: 3,
            width: 3,
        };
        for _ in 0..20 {
            let out = jittered_batch(&split, shape, &[0], 1, &mut rng);
            assert_eq!(out[..9], out[9..]);
        }
    }
}
