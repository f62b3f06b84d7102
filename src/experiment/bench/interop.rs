//! The interop figures of `distill bench`: reading a Keras-layout `.npz` and running an ONNX
//! teacher over a whole training set, each timed like every other figure, and the process's
//! peak resident memory once both have run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;

use super::figures::{BenchOptions, Figure, figure, repeat};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Classifier, OnnxOptions, OpenOptions, Predictor};

/// Which foreign inputs to time; each figure is skipped when its input is not given.
#[derive(Debug, Clone, Default)]
pub struct InteropOptions {
    /// A Keras-layout `.npz` to read (`npz_read_s`, `npz_images`).
    pub npz: Option<PathBuf>,
    /// An ONNX teacher to run over the training set (`onnx_teacher_s`, `onnx_teacher_images`).
    pub onnx_teacher: Option<PathBuf>,
    /// How the ONNX teacher runs.
    pub onnx: OnnxOptions,
}

/// Times what `interop` names, then reads the peak resident memory (`peak_rss_mib`, the whole
/// process: the dataset, the ONNX plan and its outputs included).
pub fn interop_figures(
    opts: &BenchOptions,
    interop: &InteropOptions,
    dataset: &Dataset,
    device: &Device,
    progress: &impl Fn(&str),
) -> Result<BTreeMap<String, Figure>> {
    let mut figures = BTreeMap::new();
    if let Some(path) = &interop.npz {
        progress("reading the .npz");
        let images = crate::data::load(path)?.train.len();
        figures.insert("npz_images".into(), figure(vec![images as f64]));
        figures.insert(
            "npz_read_s".into(),
            repeat(opts, || {
                let s = Instant::now();
                let ok = crate::data::load(path).is_ok();
                if ok {
                    s.elapsed().as_secs_f64()
                } else {
                    f64::NAN
                }
            }),
        );
    }
    if let Some(path) = &interop.onnx_teacher {
        progress("ONNX teacher over the training set");
        let how = OpenOptions {
            shape: Some(dataset.shape),
            onnx: interop.onnx.clone(),
        };
        let teacher = Classifier::open(path, device, &how)?;
        let images = dataset.train.to_device(device).images;
        teacher.logits(&images)?;
        figures.insert(
            "onnx_teacher_images".into(),
            figure(vec![dataset.train.len() as f64]),
        );
        figures.insert(
            "onnx_teacher_s".into(),
            repeat(opts, || {
                let s = Instant::now();
                let ok = teacher.logits(&images).is_ok();
                if ok {
                    s.elapsed().as_secs_f64()
                } else {
                    f64::NAN
                }
            }),
        );
    }
    if let Some(mib) = peak_rss_mib() {
        figures.insert("peak_rss_mib".into(), figure(vec![mib]));
    }
    Ok(figures)
}

/// This process's peak resident memory so far, in MiB (Linux; `None` elsewhere).
fn peak_rss_mib() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kib| kib / 1024.0)
}
