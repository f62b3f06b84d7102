//! A stack of fully connected layers with ReLU between them: the whole of an MLP and the head
//! of a CNN. Both architectures name, export, import and translate these layers the same way,
//! so the code lives once, here.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use super::architecture::{NamedArray, Source};
use super::dropout::DropoutLayer;
use crate::compute::{After, dense_layer};

/// Fresh layers for sizes `[in, hidden..., out]`, with burn's (PyTorch's) default init.
pub(super) fn init(sizes: &[usize], device: &Device) -> Vec<Linear> {
    sizes
        .windows(2)
        .map(|w| LinearConfig::new(w[0], w[1]).init(device))
        .collect()
}

/// Applies the stack: ReLU and then `dropout` after every layer but the last. On the CPU each
/// layer is one fused operation ([`dense_layer`]); a GPU build composes burn's.
pub(super) fn forward(layers: &[Linear], mut x: Tensor<2>, dropout: &DropoutLayer) -> Tensor<2> {
    let last = layers.len().saturating_sub(1);
    for (i, layer) in layers.iter().enumerate() {
        if cfg!(feature = "cuda") {
            x = layer.forward(x);
            if i < last {
                x = dropout.forward(relu(x));
            }
        } else {
            let hidden = i < last;
            let drop = hidden.then(|| dropout.next_draw(&x.device())).flatten();
            x = dense_layer(x, layer, After::hidden(hidden, drop));
        }
    }
    x
}

/// Raises `peak` to the largest value each unit (column of `activations`) reaches.
pub(super) fn raise_peak(peak: &mut [f32], activations: Tensor<2>) {
    let batch_max: Vec<f32> = activations
        .max_dim(0)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    for (p, m) in peak.iter_mut().zip(batch_max) {
        *p = p.max(m);
    }
}

/// Runs the hidden layers (all but the last) on `x`, raising each layer's `peak`.
pub(super) fn hidden_peaks(layers: &[Linear], mut x: Tensor<2>, peaks: &mut [Vec<f32>]) {
    let hidden = &layers[..layers.len().saturating_sub(1)];
    for (layer, peak) in hidden.iter().zip(peaks) {
        x = relu(layer.forward(x));
        raise_peak(peak, x.clone());
    }
}

/// Units whose peak never rose above zero, per layer.
pub(super) fn count_silent(peaks: &[Vec<f32>]) -> Vec<usize> {
    peaks
        .iter()
        .map(|p| p.iter().filter(|&&m| m <= 0.0).count())
        .collect()
}

/// Adds `delta` to the bias of each output unit in `classes` of `layer`.
pub(super) fn shift_bias(layer: &mut Linear, classes: &[usize], delta: f32) {
    let Some(bias) = layer.bias.take() else {
        return;
    };
    let b = bias.val();
    let device = b.device();
    let mut v: Vec<f32> = b.into_data().try_to_vec().unwrap_or_default();
    for &c in classes {
        if let Some(x) = v.get_mut(c) {
            *x += delta;
        }
    }
    let n = v.len();
    layer.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(v, [n]),
        &device,
    )));
}

/// Appends `{prefix}.{i}.weight` (`[in, out]`) and `{prefix}.{i}.bias` for every layer.
pub(super) fn export(prefix: &str, layers: &[Linear], out: &mut Vec<NamedArray>) {
    for (i, layer) in layers.iter().enumerate() {
        out.push(NamedArray::of(
            format!("{prefix}.{i}.weight"),
            layer.weight.val(),
        ));
        if let Some(b) = &layer.bias {
            out.push(NamedArray::of(format!("{prefix}.{i}.bias"), b.val()));
        }
    }
}

/// Replaces every layer's weight and bias with the ones `source` gives under [`export`]'s names.
pub(super) fn import(
    prefix: &str,
    layers: &mut [Linear],
    source: &mut Source<'_>,
    device: &Device,
) -> std::result::Result<(), String> {
    for (i, layer) in layers.iter_mut().enumerate() {
        let [rows, cols] = layer.weight.dims();
        let weight = source(&format!("{prefix}.{i}.weight"), &[rows, cols])?;
        let bias = source(&format!("{prefix}.{i}.bias"), &[cols])?;
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weight, [rows, cols]),
            device,
        ));
        layer.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [cols]),
            device,
        )));
    }
    Ok(())
}
