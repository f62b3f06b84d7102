//! A network's inference-time forward pass in a neutral form: the list of layers that the
//! exporters (ONNX in `onnx_export`, PyTorch in `torch_export`) walk. An architecture says once
//! what it computes; a new export format needs no method on every architecture.

use super::architecture::NamedArray;

/// One inference-time layer, its tensors under the checkpoint's names.
#[derive(Debug, Clone)]
pub enum Layer {
    /// Flat rows `[batch, C·H·W]` viewed as images `[batch, C, H, W]`.
    Unflatten([usize; 3]),
    /// A 3×3 convolution with one pixel of zero padding: weight `[out, in, 3, 3]`, bias `[out]`.
    Conv3x3 {
        /// `[out, in, 3, 3]`.
        weight: NamedArray,
        /// `[out]`.
        bias: NamedArray,
    },
    /// Batch normalization in inference form.
    BatchNorm(Norm),
    /// 2×2 max-pooling with stride 2, odd edges dropped.
    MaxPool2,
    /// Element-wise `max(x, 0)`.
    Relu,
    /// Every axis after the batch flattened into one.
    Flatten,
    /// `x · weight + bias`: weight `[in, out]` as burn's `Linear` holds it, bias `[out]`.
    Dense {
        /// `[in, out]`.
        weight: NamedArray,
        /// `[out]`.
        bias: NamedArray,
    },
}

/// Batch normalization per channel: `gamma · (x - mean) / sqrt(var + epsilon) + beta`.
#[derive(Debug, Clone)]
pub struct Norm {
    /// Scale, `[channels]`.
    pub gamma: NamedArray,
    /// Shift, `[channels]`.
    pub beta: NamedArray,
    /// Running mean, `[channels]`.
    pub mean: NamedArray,
    /// Running variance, `[channels]`.
    pub var: NamedArray,
    /// Added to the variance.
    pub epsilon: f32,
}

/// A convolution's weight and bias with the batch norm after it folded in, as inference
/// computes it: `w·s` and `(b - mean)·s + beta`, where `s = gamma / sqrt(var + epsilon)`.
pub fn fold_batch_norm(conv: (&NamedArray, &NamedArray), norm: &Norm) -> (NamedArray, NamedArray) {
    let (mut w, mut b) = (conv.0.clone(), conv.1.clone());
    let Norm {
        gamma,
        beta,
        mean,
        var,
        epsilon,
    } = norm;
    let per = w.values.len() / b.values.len().max(1);
    for (o, bias) in b.values.iter_mut().enumerate() {
        let s = gamma.values[o] / (var.values[o] + epsilon).sqrt();
        w.values[o * per..(o + 1) * per]
            .iter_mut()
            .for_each(|x| *x *= s);
        *bias = (*bias - mean.values[o]) * s + beta.values[o];
    }
    (w, b)
}

/// Dense layers from weight-then-bias pairs, with a ReLU after all but the last.
pub fn dense_stack(arrays: Vec<NamedArray>) -> Vec<Layer> {
    let count = arrays.len() / 2;
    let mut layers = Vec::new();
    let mut arrays = arrays.into_iter();
    for i in 0..count {
        let (Some(weight), Some(bias)) = (arrays.next(), arrays.next()) else {
            break;
        };
        layers.push(Layer::Dense { weight, bias });
        if i + 1 < count {
            layers.push(Layer::Relu);
        }
    }
    layers
}
