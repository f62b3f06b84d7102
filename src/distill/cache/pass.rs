//! One teacher pass over a transfer set, in steps with a progress bar.

use std::sync::Mutex;

use burn::tensor::Tensor;

use crate::error::Result;
use crate::model::{Classifier, RawOutputs};

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

/// The most values the last pass's raw outputs may hold to be kept (64 MiB of floats): a grid
/// over a transfer set of ordinary size runs its teacher once, and a huge one is not held in
/// memory for it.
const MEMO_VALUES: usize = 1 << 24;

/// The last pass's raw outputs, one per step, under the identity of its teacher and images.
/// `--temperature auto` asks for one teacher's log-probabilities over one transfer set at
/// several T in turn; every T follows from these outputs exactly as a pass at that T computes
/// it (see [`Classifier::soften`]), and for a large teacher the pass is most of the cost.
static LAST_PASS: Mutex<Option<(String, Vec<RawOutputs>)>> = Mutex::new(None);

/// Lets go of the kept raw outputs (a grid calls it when its students are trained), so that
/// they do not stay in memory for the rest of the process.
pub fn release_kept_pass() {
    *LAST_PASS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// `teacher`'s log-probabilities at T for every row of `images`, in steps of [`PASS_ROWS`]
/// with a progress bar. With `memo` (what names the teacher and the images), the raw outputs
/// are kept for the next call with the same name, which then does not run the teacher.
pub(crate) fn teacher_pass(
    teacher: &Classifier,
    images: &Tensor<2>,
    temperature: f32,
    memo: Option<&str>,
) -> Result<Tensor<2>> {
    let kept = memo.and_then(|name| {
        let last = LAST_PASS.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, raw)| raw.clone())
    });
    let raw = match kept {
        Some(raw) => raw,
        None => {
            let raw = raw_pass(teacher, images)?;
            if let Some(name) = memo {
                let values: usize = raw.iter().map(RawOutputs::len).sum();
                let mut last = LAST_PASS.lock().unwrap_or_else(|e| e.into_inner());
                *last = (values <= MEMO_VALUES).then(|| (name.to_string(), raw.clone()));
            }
            raw
        }
    };
    let parts = raw
        .iter()
        .map(|r| teacher.soften(r, temperature))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(parts, 0))
}

/// The teacher's raw outputs for `images`, one per step of [`PASS_ROWS`] rows.
fn raw_pass(teacher: &Classifier, images: &Tensor<2>) -> Result<Vec<RawOutputs>> {
    let [n, _] = images.dims();
    if n <= PASS_ROWS {
        return Ok(vec![teacher.raw_outputs(images)?]);
    }
    let bar = images_bar(n, "teacher");
    let mut parts = Vec::with_capacity(n.div_ceil(PASS_ROWS));
    for start in (0..n).step_by(PASS_ROWS) {
        let end = (start + PASS_ROWS).min(n);
        parts.push(teacher.raw_outputs(&images.clone().slice(start..end))?);
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::model::{Dropout, ModelConfig, Network, Predictor};
    use burn::tensor::{Device, Distribution};

    fn net(device: &Device) -> Classifier {
        let spec = "mlp:16".parse().unwrap();
        let cfg = ModelConfig::new(&spec, ImageShape::gray(4, 4), 5, Dropout::NONE).unwrap();
        Classifier::Single(Network::init(cfg, device))
    }

    #[test]
    fn a_kept_pass_gives_every_temperature_the_bits_of_a_pass_of_its_own() {
        let device = Device::flex();
        // More rows than one step, so the kept outputs span several.
        let images = Tensor::<2>::random([PASS_ROWS + 300, 16], Distribution::Default, &device);
        let bits = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        for teacher in [
            net(&device),
            Classifier::Ensemble(vec![net(&device), net(&device)]),
        ] {
            let name = format!("test-{}", teacher.describe());
            teacher_pass(&teacher, &images, 1.0, Some(&name)).unwrap();
            for t in [2.0, 20.0] {
                let direct = bits(teacher.log_probs(&images, t).unwrap());
                let kept = bits(teacher_pass(&teacher, &images, t, Some(&name)).unwrap());
                assert_eq!(kept, direct, "T = {t}, {}", teacher.describe());
            }
        }
        // The kept outputs are used, not recomputed: under the same name another network's
        // pass gives the first one's values.
        let (first, other) = (net(&device), net(&device));
        teacher_pass(&first, &images, 1.0, Some("test-kept")).unwrap();
        let kept = bits(teacher_pass(&other, &images, 4.0, Some("test-kept")).unwrap());
        assert_eq!(kept, bits(first.log_probs(&images, 4.0).unwrap()));
        assert_ne!(kept, bits(other.log_probs(&images, 4.0).unwrap()));
    }
}
