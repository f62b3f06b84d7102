//! What distillation changed, image by image: the test images the student alone gets wrong and
//! the distilled student gets right ("fixed"), and the reverse ("broken"), per true class, with a
//! few of each to look at, and where the errors moved in the confusion matrix.

use serde::{Deserialize, Serialize};

use crate::data::Label;
use crate::eval::argmax;

/// How many images of each kind the gallery shows.
pub const GALLERY: usize = 12;

/// One test image whose answer distillation changed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangedImage {
    /// Index in the test set.
    pub index: usize,
    /// True class.
    pub label: usize,
    /// The student alone's answer.
    pub alone: usize,
    /// The distilled student's answer.
    pub distilled: usize,
}

/// The test images on which the student alone and the distilled student disagree about
/// being right. `fixed − broken`, summed over classes, is exactly the student alone's errors
/// minus the distilled student's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Changed {
    /// Per true class: images the student alone gets wrong and the distilled student right.
    pub fixed: Vec<usize>,
    /// Per true class: images the student alone gets right and the distilled student wrong.
    pub broken: Vec<usize>,
    /// The first fixed images in test order (at most [`GALLERY`]).
    pub fixed_images: Vec<ChangedImage>,
    /// The first broken images in test order (at most [`GALLERY`]).
    pub broken_images: Vec<ChangedImage>,
    /// `moved[true][predicted]`: the distilled student's count minus the student alone's, off
    /// the diagonal (0 on it). Negative cells are mistakes distillation removed.
    pub moved: Vec<Vec<i64>>,
}

impl Changed {
    /// Compares the answers in `alone` and `distilled` (logits `[n, classes]` each) with
    /// `labels`.
    pub fn of(labels: &[Label], alone: &[f32], distilled: &[f32], classes: usize) -> Changed {
        let mut c = Changed {
            fixed: vec![0; classes],
            broken: vec![0; classes],
            moved: vec![vec![0; classes]; classes],
            ..Changed::default()
        };
        let rows = alone
            .chunks_exact(classes)
            .zip(distilled.chunks_exact(classes));
        for (index, ((a, d), &y)) in rows.zip(labels).enumerate() {
            let (label, a, d) = (y as usize, argmax(a), argmax(d));
            if a != label {
                c.moved[label][a] -= 1;
            }
            if d != label {
                c.moved[label][d] += 1;
            }
            let image = ChangedImage {
                index,
                label,
                alone: a,
                distilled: d,
            };
            let (counts, gallery) = match (a == label, d == label) {
                (false, true) => (&mut c.fixed, &mut c.fixed_images),
                (true, false) => (&mut c.broken, &mut c.broken_images),
                _ => continue,
            };
            counts[label] += 1;
            if gallery.len() < GALLERY {
                gallery.push(image);
            }
        }
        c
    }

    /// Total fixed images.
    pub fn total_fixed(&self) -> usize {
        self.fixed.iter().sum()
    }

    /// Total broken images.
    pub fn total_broken(&self) -> usize {
        self.broken.iter().sum()
    }

    /// The counts in one sentence.
    pub fn sentence(&self) -> String {
        let (f, b) = (self.total_fixed(), self.total_broken());
        let net = f as i64 - b as i64;
        let shown = match net < 0 {
            true => format!("\u{2212}{}", -net),
            false => net.to_string(),
        };
        let verb = match net {
            n if n > 0 => format!("{n} fewer errors"),
            0 => "as many errors".to_string(),
            n => format!("{} more errors", -n),
        };
        format!(
            "Distillation fixed {f} test images the student alone got wrong and broke {b} it got \
             right: {f} \u{2212} {b} = {shown}, so the distilled student makes {verb} than the \
             student alone."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_minus_broken_is_the_difference_in_errors() {
        // Three classes, five images: logits as one-hot votes.
        let vote = |c: usize| {
            let mut v = [0f32; 3];
            v[c] = 1.0;
            v
        };
        let labels: Vec<Label> = vec![0, 1, 2, 2, 1];
        let alone: Vec<f32> = [1, 1, 0, 2, 0].iter().flat_map(|&c| vote(c)).collect();
        let dist: Vec<f32> = [0, 1, 2, 1, 0].iter().flat_map(|&c| vote(c)).collect();
        let c = Changed::of(&labels, &alone, &dist, 3);
        // Alone: wrong on 0, 2, 4 (3 errors); distilled: wrong on 3, 4 (2 errors).
        assert_eq!(c.fixed, vec![1, 0, 1]);
        assert_eq!(c.broken, vec![0, 0, 1]);
        assert_eq!(c.total_fixed() as i64 - c.total_broken() as i64, 3 - 2);
        assert_eq!(c.fixed_images[0].index, 0);
        assert_eq!(c.fixed_images[0].alone, 1);
        assert_eq!(c.broken_images[0].index, 3);
        // Image 4 is wrong both ways (1 -> 0) and moves nothing; 0->1 and 2->0 went, 2->1 came.
        assert_eq!(c.moved[0][1], -1);
        assert_eq!(c.moved[2][0], -1);
        assert_eq!(c.moved[2][1], 1);
        assert_eq!(c.moved[1][0], 0);
        assert!(c.sentence().contains("1 fewer errors"), "{}", c.sentence());
    }
}
