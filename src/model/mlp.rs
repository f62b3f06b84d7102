//! The multilayer perceptron of the paper: ReLU hidden layers, dropout, class logits.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::net::{Architecture, NamedArray, Source};
use super::onnx_export::OnnxGraph;
use super::spec::Dropout as DropoutRates;
use crate::data::ImageShape;
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
        let layers = self
            .sizes()
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Mlp {
            layers,
            input_dropout: DropoutConfig::new(self.input_dropout).init(),
            hidden_dropout: DropoutConfig::new(self.hidden_dropout).init(),
        }
    }
}

/// A ReLU multilayer perceptron producing class logits.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    input_dropout: Dropout,
    hidden_dropout: Dropout,
}

impl Architecture for Mlp {
    /// Dropout is active only on an autodiff device in training mode.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = self.input_dropout.forward(x);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.hidden_dropout.forward(relu(x));
            }
        }
        x
    }

    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        let hidden = &self.layers[..self.layers.len() - 1];
        let mut peak: Vec<Vec<f32>> = hidden
            .iter()
            .map(|l| vec![f32::NEG_INFINITY; l.weight.dims()[1]])
            .collect();
        let [n, _] = images.dims();
        for s in (0..n).step_by(CHUNK) {
            let mut x = images.clone().slice(s..(s + CHUNK).min(n));
            for (layer, peak) in hidden.iter().zip(&mut peak) {
                x = relu(layer.forward(x));
                let batch_max: Vec<f32> = x
                    .clone()
                    .max_dim(0)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                for (p, m) in peak.iter_mut().zip(batch_max) {
                    *p = p.max(m);
                }
            }
        }
        peak.iter()
            .map(|p| p.iter().filter(|&&m| m <= 0.0).count())
            .collect()
    }

    fn shift_output_bias(&mut self, classes: &[usize], delta: f32) {
        let Some(last) = self.layers.last_mut() else {
            return;
        };
        let Some(bias) = last.bias.take() else { return };
        let b = bias.val();
        let device = b.device();
        let mut v: Vec<f32> = b.into_data().try_to_vec().unwrap_or_default();
        for &c in classes {
            if let Some(x) = v.get_mut(c) {
                *x += delta;
            }
        }
        let n = v.len();
        last.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(v, [n]),
            &device,
        )));
    }

    fn export(&self) -> Vec<NamedArray> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            out.push(NamedArray::of(
                format!("layers.{i}.weight"),
                layer.weight.val(),
            ));
            if let Some(b) = &layer.bias {
                out.push(NamedArray::of(format!("layers.{i}.bias"), b.val()));
            }
        }
        out
    }

    fn import(
        &mut self,
        source: &mut Source<'_>,
        device: &Device,
    ) -> std::result::Result<(), String> {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let [rows, cols] = layer.weight.dims();
            let weight = source(&format!("layers.{i}.weight"), &[rows, cols])?;
            let bias = source(&format!("layers.{i}.bias"), &[cols])?;
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

    fn to_onnx(&self, graph: &mut OnnxGraph) {
        let arrays = self.export();
        let last = self.layers.len() - 1;
        for (i, pair) in arrays.chunks_exact(2).enumerate() {
            graph.dense(&pair[0], &pair[1]);
            if i < last {
                graph.relu();
            }
        }
    }

    fn torch_module(&self) -> String {
        // Flatten first, so that the module takes [N, C, H, W] images as well as flat ones;
        // it is why the first Linear is named `1`.
        let mut parts = vec!["nn.Flatten()".to_string()];
        for (i, l) in self.layers.iter().enumerate() {
            let [rows, cols] = l.weight.dims();
            if i > 0 {
                parts.push("nn.ReLU()".into());
            }
            parts.push(format!("nn.Linear({rows}, {cols})"));
        }
        format!("nn.Sequential({})", parts.join(", "))
    }

    fn torch_state(&self) -> Vec<NamedArray> {
        self.export()
            .chunks_exact(2)
            .enumerate()
            .flat_map(|(i, pair)| {
                let (w, b) = (&pair[0], &pair[1]);
                let [rows, cols] = [w.shape[0], w.shape[1]];
                // PyTorch's Linear holds [out, in]; burn's holds [in, out].
                let mut t = vec![0.0f32; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        t[c * rows + r] = w.values[r * cols + c];
                    }
                }
                let index = 1 + 2 * i;
                [
                    NamedArray {
                        name: format!("{index}.weight"),
                        shape: vec![cols, rows],
                        values: t,
                    },
                    NamedArray {
                        name: format!("{index}.bias"),
                        shape: b.shape.clone(),
                        values: b.values.clone(),
                    },
                ]
            })
            .collect()
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
