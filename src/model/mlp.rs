//! The multilayer perceptron of the paper: ReLU hidden layers, dropout, class logits.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::architecture::{Architecture, NamedArray, Source};
use super::dense;
use super::dropout::Dropout as DropoutRates;
use super::dropout::DropoutLayer;
use super::layers::{Layer, dense_stack};
use crate::data::{ImageShape, Standardize};
use crate::error::{Error, Result};

/// Rows per forward pass when many images are evaluated at once, to bound memory.
pub(crate) const CHUNK: usize = 2048;

/// Full architecture of an MLP: input size, hidden widths, classes and dropout rates.
/// Built only through [`MlpConfig::new`], which checks every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input features (values per image).
    pub inputs: usize,
    /// Hidden-layer widths.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Dropout probability on the input pixels during training.
    pub input_dropout: f64,
    /// Dropout probability on each hidden layer's output during training.
    pub hidden_dropout: f64,
    /// Image height and width, kept so tools can draw inputs.
    pub image: [usize; 2],
    /// Colour channels of the input images (absent, and so 1, in checkpoints written before
    /// channels existed).
    #[serde(default = "one")]
    pub channels: usize,
    /// For a feature table, the standardization fitted on its training rows, applied before
    /// the first layer so that the model takes raw features (and folded into that layer on
    /// export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<Standardize>,
}

fn one() -> usize {
    1
}

impl MlpConfig {
    /// Checks and builds a configuration.
    pub fn new(
        hidden: &[usize],
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
        if shape.is_empty() {
            return Err(Error::config("image size must be non-zero"));
        }
        Ok(MlpConfig {
            inputs: shape.len(),
            hidden: hidden.to_vec(),
            classes,
            input_dropout: dropout.input,
            hidden_dropout: dropout.hidden,
            image: shape.hw(),
            channels: shape.channels,
            standardize: None,
        })
    }

    /// Shape of the input images.
    pub fn shape(&self) -> ImageShape {
        ImageShape {
            channels: self.channels,
            height: self.image[0],
            width: self.image[1],
        }
    }

    /// Layer sizes from input to output.
    fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.inputs];
        s.extend(&self.hidden);
        s.push(self.classes);
        s
    }

    /// Number of weights and biases, `None` on overflow.
    pub fn checked_params(&self) -> Option<usize> {
        self.sizes().windows(2).try_fold(0usize, |acc, w| {
            w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(acc)
        })
    }

    /// Creates a freshly initialized network on `device` (seed the device first for
    /// reproducible weights).
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            layers: dense::init(&self.sizes(), device),
            input_dropout: DropoutLayer::new(self.input_dropout),
            hidden_dropout: DropoutLayer::new(self.hidden_dropout),
            standardize: self.standardize.clone(),
        }
    }
}

/// A ReLU multilayer perceptron producing class logits.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    input_dropout: DropoutLayer,
    hidden_dropout: DropoutLayer,
    #[module(skip)]
    standardize: Option<Standardize>,
}

impl Mlp {
    /// `x` as the first layer sees it: standardized, for a model of a table.
    fn standardized(&self, x: Tensor<2>) -> Tensor<2> {
        let Some(s) = &self.standardize else {
            return x;
        };
        let row = |v: &[f32]| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, v.len()]), &x.device())
        };
        let (mean, scale) = (row(&s.mean), row(&s.scale));
        (x - mean) * scale
    }

    /// The layers with the standardization folded into the first: `W' = diag(scale) W`,
    /// `b' = b - (mean * scale) W`, which take raw features as the model does.
    fn folded(&self) -> Vec<Linear> {
        let mut layers = self.layers.clone();
        let (Some(s), Some(first)) = (&self.standardize, layers.first_mut()) else {
            return layers;
        };
        let w = first.weight.val();
        let device = w.device();
        let [inputs, _] = w.dims();
        let scale = Tensor::<2>::from_data(TensorData::new(s.scale.clone(), [inputs, 1]), &device);
        let shift: Vec<f32> = s.mean.iter().zip(&s.scale).map(|(m, k)| m * k).collect();
        let shift = Tensor::<2>::from_data(TensorData::new(shift, [1, inputs]), &device);
        let moved = shift.matmul(w.clone()).reshape([-1]);
        first.weight = Param::from_tensor(w * scale);
        if let Some(b) = first.bias.take() {
            first.bias = Some(Param::from_tensor(b.val() - moved));
        }
        layers
    }

    /// The weights as a runtime that takes raw features needs them: the checkpoint's arrays,
    /// with a table's standardization folded into the first layer.
    pub fn inference_export(&self) -> Vec<NamedArray> {
        let mut out = Vec::new();
        dense::export("layers", &self.folded(), &mut out);
        out
    }
}

impl Architecture for Mlp {
    /// Dropout is active only on an autodiff device in training mode.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        dense::forward(
            &self.layers,
            self.input_dropout.forward(self.standardized(x)),
            &self.hidden_dropout,
        )
    }

    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        let hidden = &self.layers[..self.layers.len() - 1];
        let mut peaks: Vec<Vec<f32>> = hidden
            .iter()
            .map(|l| vec![f32::NEG_INFINITY; l.weight.dims()[1]])
            .collect();
        let [n, _] = images.dims();
        for s in (0..n).step_by(CHUNK) {
            let x = self.standardized(images.clone().slice(s..(s + CHUNK).min(n)));
            dense::hidden_peaks(&self.layers, x, &mut peaks);
        }
        dense::count_silent(&peaks)
    }

    fn shift_output_bias(&mut self, classes: &[usize], delta: f32) {
        if let Some(last) = self.layers.last_mut() {
            dense::shift_bias(last, classes, delta);
        }
    }

    fn export(&self) -> Vec<NamedArray> {
        let mut out = Vec::new();
        dense::export("layers", &self.layers, &mut out);
        out
    }

    fn import(
        &mut self,
        source: &mut Source<'_>,
        device: &Device,
    ) -> std::result::Result<(), String> {
        dense::import("layers", &mut self.layers, source, device)
    }

    fn layers(&self) -> Vec<Layer> {
        dense_stack(self.inference_export())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(mlp: &mut Mlp, i: usize, w: Vec<f32>, shape: [usize; 2], b: Vec<f32>, d: &Device) {
        mlp.layers[i].weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), d));
        mlp.layers[i].bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [shape[1]]),
            d,
        )));
    }

    #[test]
    fn silent_units_are_those_that_never_fire_on_any_image() {
        let device = Device::flex();
        let cfg = MlpConfig::new(&[6, 4], ImageShape::gray(2, 2), 3, DropoutRates::NONE).unwrap();
        let mut mlp = cfg.init(&device);
        // Layer 1: only unit 4 reads an input (pixel 0); the rest fire iff their bias is > 0.
        let mut w = vec![0.0f32; 4 * 6];
        w[4] = 1.0;
        set(
            &mut mlp,
            0,
            w,
            [4, 6],
            vec![1.0, -1.0, 1.0, -1.0, 0.0, 2.0],
            &device,
        );
        set(
            &mut mlp,
            1,
            vec![0.0; 6 * 4],
            [6, 4],
            vec![-1.0, 1.0, 1.0, 1.0],
            &device,
        );
        // More images than one chunk; pixel 0 lights up only in an image of the second chunk.
        let n = CHUNK + 1000;
        let mut pixels = vec![0.0f32; n * 4];
        let images =
            |p: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(p.clone(), [n, 4]), &device);
        assert_eq!(mlp.silent_units(&images(&pixels)), vec![3, 1]);
        pixels[(CHUNK + 500) * 4] = 1.0;
        assert_eq!(mlp.silent_units(&images(&pixels)), vec![2, 1]);
    }
}
