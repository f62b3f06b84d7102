//! A convolutional network: 3×3 convolution blocks (conv, optional batch norm, 2×2 max-pool,
//! ReLU), then a dense ReLU head. It takes the same flat `[batch, C·H·W]` rows as the MLP and
//! reshapes them to images, so data, training, caches and ensembles need nothing new.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::architecture::{Architecture, NamedArray, Source};
use super::dense;
use super::dropout::Dropout as DropoutRates;
use super::dropout::DropoutLayer;
use super::layers::{Layer, Norm, dense_stack};
use crate::compute::{batch_norm_layer, conv_layer, pool_relu};
use crate::data::ImageShape;
use crate::error::{Error, Result};

/// The most convolution blocks a spec may have: each halves the image, so 16 already needs
/// images of 65,536 pixels a side.
pub const MAX_CONV_BLOCKS: usize = 16;

/// Rows per forward pass in the diagnostics: a convolution's activations are C·H·W floats per
/// image, so chunks are smaller than the MLP's.
const CHUNK: usize = 512;
/// Batch norm's epsilon and running-average momentum: PyTorch's defaults, so that exported
/// modules behave the same.
const BN_EPSILON: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Full architecture of a CNN. Built only through [`CnnConfig::new`], which checks every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Output channels of each convolution block.
    pub channels: Vec<usize>,
    /// Dense hidden widths after the last block.
    pub dense: Vec<usize>,
    /// Batch normalization after each convolution.
    pub batch_norm: bool,
    /// Shape of the input images.
    pub shape: ImageShape,
    /// Output classes.
    pub classes: usize,
    /// Dropout on the input pixels and on the dense hidden layers while training.
    pub dropout: DropoutRates,
}

impl CnnConfig {
    /// Checks and builds a configuration: at least one block, and images large enough to be
    /// halved once per block.
    pub fn new(
        channels: &[usize],
        dense: &[usize],
        batch_norm: bool,
        shape: ImageShape,
        classes: usize,
        dropout: DropoutRates,
    ) -> Result<Self> {
        let dropout = dropout.check()?;
        if classes < 2 {
            return Err(Error::config(format!(
                "a classifier needs at least 2 classes, got {classes}"
            )));
        }
        if channels.is_empty() || channels.len() > MAX_CONV_BLOCKS {
            return Err(Error::config(format!(
                "a CNN needs 1 to {MAX_CONV_BLOCKS} convolution blocks, got {}",
                channels.len()
            )));
        }
        let blocks = channels.len();
        if shape.channels == 0 || (shape.height >> blocks) == 0 || (shape.width >> blocks) == 0 {
            return Err(Error::config(format!(
                "{blocks} convolution blocks halve a {shape} image {blocks} times, leaving no \
                 pixel; use fewer blocks"
            )));
        }
        Ok(CnnConfig {
            channels: channels.to_vec(),
            dense: dense.to_vec(),
            batch_norm,
            shape,
            classes,
            dropout,
        })
    }

    /// Values per image entering the dense head: the last block's channels times what is left
    /// of the image after every 2×2 pool. `None` on overflow.
    fn flat(&self) -> Option<usize> {
        let k = self.channels.len();
        self.channels
            .last()?
            .checked_mul(self.shape.height >> k)?
            .checked_mul(self.shape.width >> k)
    }

    /// Layer sizes of the dense head, from the flattened features to the classes.
    fn head_sizes(&self) -> Option<Vec<usize>> {
        let mut s = vec![self.flat()?];
        s.extend(&self.dense);
        s.push(self.classes);
        Some(s)
    }

    /// Number of weights and biases (batch norm's scale and shift included, its running
    /// statistics not), `None` on overflow.
    pub fn checked_params(&self) -> Option<usize> {
        let mut c_in = self.shape.channels;
        let mut total = 0usize;
        for &c in &self.channels {
            let per = c_in
                .checked_mul(9)?
                .checked_add(1 + 2 * self.batch_norm as usize)?;
            total = total.checked_add(per.checked_mul(c)?)?;
            c_in = c;
        }
        self.head_sizes()?.windows(2).try_fold(total, |acc, w| {
            w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(acc)
        })
    }

    /// Creates a freshly initialized network on `device` (seed the device first for
    /// reproducible weights). Call only on a checked configuration.
    pub fn init(&self, device: &Device) -> Cnn {
        let mut c_in = self.shape.channels;
        let mut convs = Vec::new();
        for &c in &self.channels {
            convs.push(
                Conv2dConfig::new([c_in, c], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            );
            c_in = c;
        }
        let norms = match self.batch_norm {
            true => self
                .channels
                .iter()
                .map(|&c| {
                    BatchNormConfig::new(c)
                        .with_epsilon(BN_EPSILON)
                        .with_momentum(BN_MOMENTUM)
                        .init(device)
                })
                .collect(),
            false => Vec::new(),
        };
        Cnn {
            convs,
            norms,
            dense: dense::init(&self.head_sizes().unwrap_or_default(), device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            input_dropout: DropoutLayer::new(self.dropout.input),
            hidden_dropout: DropoutLayer::new(self.dropout.hidden),
            image: [self.shape.channels, self.shape.height, self.shape.width],
        }
    }
}

/// A convolutional network producing class logits.
#[derive(Module, Debug)]
pub struct Cnn {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    dense: Vec<Linear>,
    pool: MaxPool2d,
    input_dropout: DropoutLayer,
    hidden_dropout: DropoutLayer,
    image: [usize; 3],
}

impl Cnn {
    /// Runs the convolution blocks on flat rows; each block's output is handed to `each`. On the
    /// CPU the convolution, batch norm in training and the pool with its ReLU are fused operations
    /// of our own ([`conv_layer`], [`batch_norm_layer`], [`pool_relu`]); a
    /// GPU build composes burn's.
    fn features(&self, x: Tensor<2>, mut each: impl FnMut(&Tensor<4>)) -> Tensor<2> {
        let [n, _] = x.dims();
        let [c, h, w] = self.image;
        let mut x: Tensor<4> = x.reshape([n, c, h, w]);
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv_layer(x, conv);
            if let Some(bn) = self.norms.get(i) {
                x = batch_norm_layer(x, bn);
            }
            // Max-pool commutes with ReLU; pooling first runs ReLU on a quarter of the values.
            x = pool_relu(x, &self.pool);
            each(&x);
        }
        x.flatten(1, 3)
    }
}

impl Architecture for Cnn {
    /// Dropout and batch statistics are used only on an autodiff device in training mode.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.features(self.input_dropout.forward(x), |_| {});
        dense::forward(&self.dense, x, &self.hidden_dropout)
    }

    /// A convolution channel counts as one unit: silent when it is zero at every position of
    /// every image.
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        let widths = self.convs.iter().map(|c| c.weight.dims()[0]).chain(
            self.dense[..self.dense.len() - 1]
                .iter()
                .map(|l| l.weight.dims()[1]),
        );
        let mut peaks: Vec<Vec<f32>> = widths.map(|w| vec![f32::NEG_INFINITY; w]).collect();
        let (conv_peaks, dense_peaks) = peaks.split_at_mut(self.convs.len());
        let [n, _] = images.dims();
        for s in (0..n).step_by(CHUNK) {
            let mut block = 0;
            let x = self.features(images.clone().slice(s..(s + CHUNK).min(n)), |a| {
                let [_, c, h, w] = a.dims();
                let per_channel = a.clone().max_dim(0).reshape([c, h * w]).max_dim(1);
                dense::raise_peak(&mut conv_peaks[block], per_channel.reshape([1, c]));
                block += 1;
            });
            dense::hidden_peaks(&self.dense, x, dense_peaks);
        }
        dense::count_silent(&peaks)
    }

    fn shift_output_bias(&mut self, classes: &[usize], delta: f32) {
        if let Some(last) = self.dense.last_mut() {
            dense::shift_bias(last, classes, delta);
        }
    }

    fn export(&self) -> Vec<NamedArray> {
        let mut out = Vec::new();
        for (i, conv) in self.convs.iter().enumerate() {
            out.push(NamedArray::of(
                format!("convs.{i}.weight"),
                conv.weight.val(),
            ));
            if let Some(b) = &conv.bias {
                out.push(NamedArray::of(format!("convs.{i}.bias"), b.val()));
            }
        }
        for (i, bn) in self.norms.iter().enumerate() {
            out.push(NamedArray::of(format!("norms.{i}.gamma"), bn.gamma.val()));
            out.push(NamedArray::of(format!("norms.{i}.beta"), bn.beta.val()));
            let mean = bn.running_mean.value();
            out.push(NamedArray::of(format!("norms.{i}.running_mean"), mean));
            let var = bn.running_var.value();
            out.push(NamedArray::of(format!("norms.{i}.running_var"), var));
        }
        dense::export("dense", &self.dense, &mut out);
        out
    }

    fn import(
        &mut self,
        source: &mut Source<'_>,
        device: &Device,
    ) -> std::result::Result<(), String> {
        let vector = |v: Vec<f32>| {
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), device)
        };
        for (i, conv) in self.convs.iter_mut().enumerate() {
            let dims = conv.weight.dims();
            let weight = source(&format!("convs.{i}.weight"), &dims)?;
            let bias = source(&format!("convs.{i}.bias"), &dims[..1])?;
            conv.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(weight, dims), device));
            conv.bias = Some(Param::from_tensor(vector(bias)));
        }
        for (i, bn) in self.norms.iter_mut().enumerate() {
            let c = bn.gamma.dims();
            let mut read = |name: &str| source(&format!("norms.{i}.{name}"), &c).map(vector);
            bn.gamma = Param::from_tensor(read("gamma")?);
            bn.beta = Param::from_tensor(read("beta")?);
            bn.running_mean = RunningState::new(read("running_mean")?);
            bn.running_var = RunningState::new(read("running_var")?);
        }
        dense::import("dense", &mut self.dense, source, device)
    }

    fn layers(&self) -> Vec<Layer> {
        let arrays = self.export();
        let find = |name: String| arrays.iter().find(|a| a.name == name).cloned();
        let mut layers = vec![Layer::Unflatten(self.image)];
        for i in 0..self.convs.len() {
            let (Some(weight), Some(bias)) = (
                find(format!("convs.{i}.weight")),
                find(format!("convs.{i}.bias")),
            ) else {
                continue;
            };
            layers.push(Layer::Conv3x3 { weight, bias });
            if let (Some(gamma), Some(beta), Some(mean), Some(var)) = (
                find(format!("norms.{i}.gamma")),
                find(format!("norms.{i}.beta")),
                find(format!("norms.{i}.running_mean")),
                find(format!("norms.{i}.running_var")),
            ) {
                let epsilon = BN_EPSILON as f32;
                layers.push(Layer::BatchNorm(Norm {
                    gamma,
                    beta,
                    mean,
                    var,
                    epsilon,
                }));
            }
            layers.extend([Layer::MaxPool2, Layer::Relu]);
        }
        layers.push(Layer::Flatten);
        let mut dense = Vec::new();
        dense::export("dense", &self.dense, &mut dense);
        layers.extend(dense_stack(dense));
        layers
    }
}
