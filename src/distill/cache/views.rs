//! Soft targets per augmentation: the teacher's log-probabilities for K fixed, seeded shifts of
//! every transfer image, computed once and stored in float16. A jittered student then trains
//! from the cache, drawing one of its image's K views each time it meets it, with no teacher
//! in the loop (as FKD and ReLabel do for crops). View 0 is always the unshifted image, the
//! others distinct shifts of up to the student's jitter.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::key::{CacheKey, teacher_key};
use super::pass::images_bar;
use super::store::{VIEWS_FORMAT, decode, finite_values, read_views, views_metadata, write_views};
use crate::data::{ImageShape, Shift, Split, index_tensor, shifted_batch};
use crate::error::{Error, Result, Setting};
use crate::model::{Classifier, Predictor};

/// Most views a cache may hold per image.
pub const MAX_VIEWS: usize = 64;

/// Images the teacher labels per forward pass while filling the cache.
const CHUNK: usize = 2048;

/// How a distilled student's inputs are presented, which decides where its soft targets come
/// from. Only [`StudentInputs::new`] makes one, so the view count always fits the shifts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StudentInputs {
    /// The transfer images as they are: one cached soft target per image.
    Plain,
    /// Changed on every batch (shifted by up to `jitter` pixels, blended by mixup), with the
    /// teacher run live on each.
    Live {
        /// Largest shift in pixels (0: none).
        jitter: usize,
        /// Mixup's Beta parameter (0: off).
        mixup: f64,
    },
    /// Shifted views whose soft targets are cached (see the module documentation).
    Views(ViewSpec),
}

/// Which views a cache holds: `views` per image, shifted by up to `max_shift` pixels, drawn
/// with `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSpec {
    /// Views per transfer image, the unshifted one included.
    pub views: usize,
    /// Largest shift in pixels, each way.
    pub max_shift: usize,
    /// Image layout the shifts apply to.
    pub shape: ImageShape,
    /// Seed of the shifts.
    pub seed: u64,
}

impl StudentInputs {
    /// Inputs shifted by up to `jitter` pixels and blended by mixup of parameter `mixup`
    /// (0: off), with `cached_views` views per image cached (0: the teacher runs live on
    /// changed batches). Refuses a cache without shifts or with mixup, or more views than
    /// there are distinct shifts.
    pub fn new(
        jitter: usize,
        mixup: f64,
        cached_views: usize,
        shape: ImageShape,
        seed: u64,
    ) -> Result<StudentInputs> {
        StudentInputs::check(jitter, mixup, cached_views)?;
        if cached_views == 0 {
            return Ok(if jitter == 0 && mixup == 0.0 {
                StudentInputs::Plain
            } else {
                StudentInputs::Live { jitter, mixup }
            });
        }
        Ok(StudentInputs::Views(ViewSpec {
            views: cached_views,
            max_shift: jitter,
            shape,
            seed,
        }))
    }

    /// Refuses a views cache without shifts or with mixup, or with more views than there are
    /// distinct shifts (or than [`MAX_VIEWS`]); 0 views (no cache) is always fine.
    pub fn check(jitter: usize, mixup: f64, cached_views: usize) -> Result<()> {
        if cached_views == 0 {
            return Ok(());
        }
        if mixup > 0.0 {
            return Err(Error::setting(
                Setting::AugmentCache,
                format!(
                    "stores soft targets of fixed views, but mixup blends new images on every \
                     batch, which only a live teacher can label: drop one of {} and {}",
                    Setting::AugmentCache,
                    Setting::Mixup
                ),
            ));
        }
        if jitter == 0 {
            return Err(Error::setting(
                Setting::AugmentCache,
                format!(
                    "stores soft targets of shifted images, but the student's inputs are not \
                     shifted: give it {} N (N > 0)",
                    Setting::Jitter
                ),
            ));
        }
        let distinct = (2 * jitter + 1).pow(2);
        let most = distinct.min(MAX_VIEWS);
        if !(2..=most).contains(&cached_views) {
            return Err(Error::setting(
                Setting::AugmentCache,
                format!(
                    "must be from 2 to {most} views (view 0 is the unshifted image; a jitter of \
                     {jitter} px has {distinct} distinct shifts), got {cached_views}"
                ),
            ));
        }
        Ok(())
    }
}

impl ViewSpec {
    /// The shifts of every view of `n` images, image by image: view 0 unshifted, the others
    /// distinct, drawn without replacement from the square of shifts. They depend on the seed
    /// and the image's index only.
    pub fn shifts(&self, n: usize) -> Vec<Shift> {
        let m = self.max_shift as i8;
        let grid: Vec<Shift> = (-m..=m)
            .flat_map(|dy| (-m..=m).map(move |dx| Shift { dy, dx }))
            .filter(|s| *s != Shift::default())
            .collect();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x7669_6577_735f_7631);
        let mut out = Vec::with_capacity(n * self.views);
        let mut pool = grid.clone();
        for _ in 0..n {
            pool.copy_from_slice(&grid);
            out.push(Shift::default());
            for k in 0..self.views - 1 {
                let j = rng.random_range(k..pool.len());
                pool.swap(k, j);
                out.push(pool[k]);
            }
        }
        out
    }

    fn key(&self, base: &CacheKey) -> CacheKey {
        CacheKey {
            data: format!(
                "{}|views {} shift {} seed {} shape {}x{}x{}",
                base.data,
                self.views,
                self.max_shift,
                self.seed,
                self.shape.channels,
                self.shape.height,
                self.shape.width
            ),
            ..base.clone()
        }
    }
}

/// Cached soft targets of every view of every transfer image.
#[derive(Debug, Clone)]
pub struct ViewTargets {
    /// `[images × views, classes]` teacher log-probabilities at the loss's temperature, image
    /// by image (row `i × views + k` is view `k` of image `i`), as decoded from float16.
    pub log_probs: Tensor<2>,
    /// The shift of each row of `log_probs`.
    pub shifts: Vec<Shift>,
    /// Which views these are.
    pub spec: ViewSpec,
}

impl ViewTargets {
    /// The teacher's full-precision soft targets at `temperature` for every view of
    /// `transfer`, with no cache (for measuring; training goes through
    /// [`view_soft_targets`]).
    pub fn label(
        teacher: &Classifier,
        transfer: &Split,
        spec: ViewSpec,
        temperature: f32,
        device: &Device,
    ) -> Result<ViewTargets> {
        let shifts = spec.shifts(transfer.len());
        let values = label_views(teacher, transfer, &shifts, spec, temperature, device)?;
        Ok(targets(values, shifts, spec, teacher.classes(), device))
    }

    /// One training batch: the images at `indices` of `split`, each in a view drawn from
    /// `rng`, and those views' soft targets.
    pub fn batch(
        &self,
        split: &Split,
        indices: &[usize],
        rng: &mut StdRng,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let rows: Vec<usize> = indices
            .iter()
            .map(|&i| i * self.spec.views + rng.random_range(0..self.spec.views))
            .collect();
        let shifts: Vec<Shift> = rows.iter().map(|&r| self.shifts[r]).collect();
        let pixels = shifted_batch(split, self.spec.shape, indices, &shifts);
        let images = Tensor::<2>::from_data(
            TensorData::new(pixels, [indices.len(), split.pixels]),
            device,
        );
        let targets = self
            .log_probs
            .clone()
            .select(0, index_tensor(&rows, device));
        (images, targets)
    }
}

/// What filling or reading a views cache found, for the run's notes.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewsCacheInfo {
    /// The cache file.
    pub path: PathBuf,
    /// Whether it was read rather than computed.
    pub hit: bool,
    /// Why an existing file was not used, if one was not.
    pub stale: Option<String>,
    /// Bytes on disk.
    pub bytes: u64,
    /// Largest difference between a probability at full precision and after float16 storage.
    pub max_prob_error: f64,
    /// Mean KL divergence (nats) from the full-precision soft targets to the stored ones.
    pub mean_kl: f64,
}

impl ViewsCacheInfo {
    /// One line for the run's notes and report: where, how big, how approximate.
    pub fn note(&self, spec: &ViewSpec) -> String {
        let how = match (&self.stale, self.hit) {
            (_, true) => "read from".to_string(),
            (Some(why), false) => format!("recomputed (the old file was stale: {why}) into"),
            (None, false) => "computed and cached in".to_string(),
        };
        format!(
            "teacher soft targets of {} views of each transfer image (unshifted, and shifts of \
             up to {} px) {how} {} ({:.1} MB in float16; largest probability error {:.1e}, \
             mean KL to full precision {:.1e} nats)",
            spec.views,
            spec.max_shift,
            self.path.display(),
            self.bytes as f64 / 1e6,
            self.max_prob_error,
            self.mean_kl
        )
    }
}

/// The teacher's soft targets at `temperature` for every view of `transfer`, read from the
/// views cache under `cache_dir` when a matching file is there, else computed and stored
/// atomically. A stale or altered file is recomputed, never used. A run that computes the
/// cache trains on the same float16-decoded values as one that reads it.
pub fn view_soft_targets(
    teacher: &Classifier,
    teacher_dir: &Path,
    transfer: &Split,
    spec: ViewSpec,
    temperature: f32,
    cache_dir: &Path,
    device: &Device,
) -> Result<(ViewTargets, ViewsCacheInfo)> {
    let key = spec.key(&teacher_key(teacher, teacher_dir, transfer, temperature)?);
    let (rows, classes) = (transfer.len() * spec.views, teacher.classes());
    let shifts = spec.shifts(transfer.len());
    let path = cache_dir.join(key.hashed_name("teacher-views", VIEWS_FORMAT));
    let meta = views_metadata(key.metadata(rows, classes));
    let mut stale = None;
    if path.exists() {
        match read_views(&path, &meta, &shifts, classes) {
            Ok((stored, errors)) => {
                let info = info(&path, true, None, errors)?;
                return Ok((targets(stored, shifts, spec, classes, device), info));
            }
            Err(why) => stale = Some(why),
        }
    }
    let full = label_views(teacher, transfer, &shifts, spec, temperature, device)?;
    // Below float16's range a log-probability would round to -inf; its probability is 0 anyway.
    let stored: Vec<f16> = full
        .iter()
        .map(|&v| f16::from_f32(v.max(-65504.0)))
        .collect();
    let decoded = decode(&stored, classes);
    let errors = quantization_error(&full, &decoded, classes);
    write_views(&path, meta, &stored, &shifts, classes, errors)?;
    let info = info(&path, false, stale, errors)?;
    Ok((targets(decoded, shifts, spec, classes, device), info))
}

fn targets(
    values: Vec<f32>,
    shifts: Vec<Shift>,
    spec: ViewSpec,
    classes: usize,
    device: &Device,
) -> ViewTargets {
    let rows = shifts.len();
    ViewTargets {
        log_probs: Tensor::<2>::from_data(TensorData::new(values, [rows, classes]), device),
        shifts,
        spec,
    }
}

fn info(
    path: &Path,
    hit: bool,
    stale: Option<String>,
    (max_prob_error, mean_kl): (f64, f64),
) -> Result<ViewsCacheInfo> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    Ok(ViewsCacheInfo {
        path: path.to_path_buf(),
        hit,
        stale,
        bytes,
        max_prob_error,
        mean_kl,
    })
}

/// Full-precision teacher log-probabilities of every view, image by image.
fn label_views(
    teacher: &Classifier,
    transfer: &Split,
    shifts: &[Shift],
    spec: ViewSpec,
    temperature: f32,
    device: &Device,
) -> Result<Vec<f32>> {
    let (n, views, classes) = (transfer.len(), spec.views, teacher.classes());
    let mut out = vec![0f32; n * views * classes];
    let bar = images_bar(n * views, "teacher views");
    let all: Vec<usize> = (0..n).collect();
    for k in 0..views {
        for chunk in all.chunks(CHUNK) {
            let view: Vec<Shift> = chunk.iter().map(|&i| shifts[i * views + k]).collect();
            let pixels = shifted_batch(transfer, spec.shape, chunk, &view);
            let images = Tensor::<2>::from_data(
                TensorData::new(pixels, [chunk.len(), transfer.pixels]),
                device,
            );
            let values = finite_values(&teacher.log_probs(&images, temperature)?, temperature)?;
            for (&i, row) in chunk.iter().zip(values.chunks_exact(classes)) {
                let at = (i * views + k) * classes;
                out[at..at + classes].copy_from_slice(row);
            }
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// (largest probability difference, mean KL from `full` to `decoded`) over all rows.
fn quantization_error(full: &[f32], decoded: &[f32], classes: usize) -> (f64, f64) {
    let mut max_err = 0f64;
    let mut kl = 0f64;
    for (a, b) in full
        .chunks_exact(classes)
        .zip(decoded.chunks_exact(classes))
    {
        for (&la, &lb) in a.iter().zip(b) {
            let (pa, pb) = ((la as f64).exp(), (lb as f64).exp());
            max_err = max_err.max((pa - pb).abs());
            kl += pa * (la as f64 - lb as f64);
        }
    }
    let rows = (full.len() / classes.max(1)).max(1);
    (max_err, (kl / rows as f64).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(views: usize, max_shift: usize, seed: u64) -> ViewSpec {
        match StudentInputs::new(max_shift, 0.0, views, ImageShape::gray(5, 5), seed) {
            Ok(StudentInputs::Views(spec)) => spec,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn views_are_the_unshifted_image_and_distinct_seeded_shifts() {
        let s = spec(6, 2, 3);
        let shifts = s.shifts(40);
        assert_eq!(shifts.len(), 40 * 6);
        for image in shifts.chunks_exact(6) {
            assert_eq!(image[0], Shift::default());
            let mut others: Vec<(i8, i8)> = image[1..].iter().map(|s| (s.dy, s.dx)).collect();
            assert!(
                others
                    .iter()
                    .all(|&(dy, dx)| dy.abs() <= 2 && dx.abs() <= 2)
            );
            assert!(!others.contains(&(0, 0)));
            others.sort();
            others.dedup();
            assert_eq!(others.len(), 5);
        }
        assert_eq!(shifts, s.shifts(40));
        // An image's views do not depend on how many images follow it.
        assert_eq!(shifts[..60], s.shifts(10)[..]);
        assert_ne!(shifts, spec(6, 2, 4).shifts(40));
        // A jitter of 1 px with 9 views is every shift once.
        let all = spec(9, 1, 3).shifts(1);
        let mut seen: Vec<(i8, i8)> = all.iter().map(|s| (s.dy, s.dx)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
    }

    #[test]
    fn view_counts_that_cannot_be_met_are_refused() {
        let shape = ImageShape::gray(5, 5);
        assert_eq!(
            StudentInputs::new(0, 0.0, 0, shape, 1).unwrap(),
            StudentInputs::Plain
        );
        assert_eq!(
            StudentInputs::new(2, 0.0, 0, shape, 1).unwrap(),
            StudentInputs::Live {
                jitter: 2,
                mixup: 0.0
            }
        );
        // Mixup alone makes every batch new, so the teacher runs live.
        assert_eq!(
            StudentInputs::new(0, 0.4, 0, shape, 1).unwrap(),
            StudentInputs::Live {
                jitter: 0,
                mixup: 0.4
            }
        );
        for (jitter, mixup, views, says) in [
            (0, 0.0, 4, "not shifted"),
            (1, 0.0, 1, "from 2 to 9"),
            (1, 0.0, 10, "from 2 to 9"),
            (8, 0.0, MAX_VIEWS + 1, "from 2 to 64"),
            (1, 0.2, 4, "only a live teacher"),
        ] {
            let e = StudentInputs::new(jitter, mixup, views, shape, 1).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn float16_storage_is_renormalized_and_its_error_measured() {
        // Log-probabilities of two rows of 4 classes: one soft (as at T = 20), one sharp.
        let soft = [0.3f32, 0.25, 0.25, 0.2].map(f32::ln);
        let sharp = [0.999_f32, 5e-4, 4e-4, 1e-4].map(f32::ln);
        let full: Vec<f32> = soft.iter().chain(&sharp).copied().collect();
        let stored: Vec<f16> = full.iter().map(|&v| f16::from_f32(v)).collect();
        let decoded = decode(&stored, 4);
        for row in decoded.chunks_exact(4) {
            let sum: f32 = row.iter().map(|v| v.exp()).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        }
        let (max_err, kl) = quantization_error(&full, &decoded, 4);
        assert!(max_err > 0.0 && max_err < 1e-3, "{max_err}");
        assert!(kl < 1e-6, "{kl}");
        // Values far out of range are refused on read rather than trusted.
        assert!(!f16::from_f32(-1e6).is_finite());
    }
}
