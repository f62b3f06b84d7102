//! `distill export`: a trained student out of distill, as ONNX (for onnxruntime and any ONNX
//! runtime) and as a PyTorch `state_dict`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;

use distill::compute::compute_device;
use distill::error::{Error, Result};
use distill::fsutil::write_atomic;
use distill::model::{
    Classifier, Network, ONNX_OPSET, ONNX_OUTPUT, OnnxModel, OnnxOptions, Predictor,
    TeacherOutputs, export_onnx, export_torch, onnx_input_name,
};

/// `distill export`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("format").required(true).multiple(true).args(["onnx", "torch"])))]
pub struct ExportCmd {
    /// Model directory of a trained network (a student or a teacher; not an ensemble).
    pub model: PathBuf,
    /// Write an ONNX file: opset 17, input `pixels` (float32 in [0, 1], [batch, C·H·W] for
    /// an MLP), output `logits` ([batch, classes]), the batch axis dynamic. The file is loaded
    /// back and checked against the model before the command succeeds.
    #[arg(long, value_name = "OUT.onnx")]
    pub onnx: Option<PathBuf>,
    /// Write the PyTorch state_dict of the equivalent torch.nn.Sequential as safetensors
    /// (names `1.weight`, `1.bias`, ...; weights [out, in]). The module's Python source is in
    /// the file's metadata under `distill.torch_module`.
    #[arg(long, value_name = "OUT.safetensors")]
    pub torch: Option<PathBuf>,
}

pub(super) fn cmd_export(c: ExportCmd) -> Result<()> {
    let (device, _) = compute_device();
    let net = match Classifier::load(&c.model, &device)? {
        Classifier::Single(n) => n,
        other => {
            return Err(Error::Checkpoint {
                path: c.model.clone(),
                reason: format!(
                    "{} cannot be exported: only a single trained network can",
                    other.describe()
                ),
            });
        }
    };
    if let Some(out) = &c.onnx {
        write_atomic(out, &export_onnx(&net))?;
        let diff = check_onnx(&net, out, &device)?;
        println!(
            "wrote {}: opset {ONNX_OPSET}, input {:?} [batch, {}], output \
             {ONNX_OUTPUT:?} [batch, {}]; read back with tract, largest logit difference {diff:.1e}",
            out.display(),
            onnx_input_name(&net),
            net.inputs(),
            net.classes()
        );
    }
    if let Some(out) = &c.torch {
        let bytes = export_torch(&net).map_err(|reason| Error::Checkpoint {
            path: c.model.clone(),
            reason,
        })?;
        write_atomic(out, &bytes)?;
        println!(
            "wrote {}: the state_dict of {}",
            out.display(),
            distill::model::torch_module(&net)
        );
    }
    Ok(())
}

/// Loads the written file with tract and compares its logits with the network's on 64
/// deterministic pseudo-random images; returns the largest difference, or an error above 1e-4.
fn check_onnx(net: &Network, path: &Path, device: &Device) -> Result<f32> {
    let shape = net.shape();
    let rows = 64;
    // A fixed linear congruential sequence: any images will do, and the same ones every time.
    let mut state = 0x2545_f491_u32;
    let pixels: Vec<f32> = (0..rows * shape.len())
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32
        })
        .collect();
    // A table's model takes raw features: spread the check over the range its training rows
    // had (two standard deviations either side of the mean).
    let pixels = match net.config.standardize() {
        None => pixels,
        Some(s) => pixels
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let j = i % s.mean.len();
                s.mean[j] + (u - 0.5) * 4.0 / s.scale[j]
            })
            .collect(),
    };
    let images = Tensor::<2>::from_data(TensorData::new(pixels, [rows, shape.len()]), device);
    // The file holds logits: nothing to detect.
    let options = OnnxOptions {
        outputs: TeacherOutputs::Logits,
        ..OnnxOptions::default()
    };
    let onnx = OnnxModel::load(path, shape, options)?;
    let host = |t: Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().unwrap_or_default() };
    let ours = host(net.logits(&images)?);
    let theirs = host(onnx.logits(&images)?);
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if ours.len() != theirs.len() || diff.is_nan() || diff > 1e-4 {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "the exported model disagrees with the original (largest logit difference \
                 {diff}); please report this"
            ),
        });
    }
    Ok(diff)
}
