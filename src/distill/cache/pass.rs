//! One teacher pass over a transfer set, in steps with a progress bar.

use burn::tensor::Tensor;

use crate::error::Result;
use crate::model::{Classifier, Predictor};

/// Images per step of a teacher's pass over a transfer set. Networks run in chunks of 2,048
/// rows and ONNX files in chunks of 256 (or of the batch the file fixes), in parallel: a
/// multiple of 2,048 keeps each step's values the bits of one call over every image, and a
/// large one keeps the ONNX chunks parallel and wastes little padding on an odd fixed batch.
const PASS_ROWS: usize = 16384;

/// A progress bar over `total` images labelled `what` (a large teacher over a large transfer
/// set takes minutes); indicatif hides it when stderr is not a terminal.
pub(super) fn images_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:>20} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} images  (eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}

/// `teacher`'s log-probabilities at T for every row of `images`, in steps of [`PASS_ROWS`]
/// with a progress bar.
pub(crate) fn teacher_pass(
    teacher: &Classifier,
    images: &Tensor<2>,
    temperature: f32,
) -> Result<Tensor<2>> {
    let [n, _] = images.dims();
    if n <= PASS_ROWS {
        return teacher.log_probs(images, temperature);
    }
    let bar = images_bar(n, "teacher");
    let mut parts = Vec::with_capacity(n.div_ceil(PASS_ROWS));
    for start in (0..n).step_by(PASS_ROWS) {
        let end = (start + PASS_ROWS).min(n);
        parts.push(teacher.log_probs(&images.clone().slice(start..end), temperature)?);
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(Tensor::cat(parts, 0))
}
