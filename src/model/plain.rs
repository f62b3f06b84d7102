//! A plain forward pass of an MLP for one image at a time on the CPU: the serving path.
//!
//! At batch 1 a tensor library spends most of its time on per-operation dispatch, allocation
//! and waking the thread pool, not on arithmetic (the student's three matrix products are about
//! 1.3 million multiply-adds, tens of microseconds of work). This path keeps the weights as host
//! arrays and runs each layer as a sequence of row updates, skipping inputs that are zero (most
//! pixels of a digit, and about half of every ReLU layer's outputs), on one thread. It gives
//! the network's logits up to float rounding: the sums are taken in another order.

use super::checkpoint::Network;
use super::net::{Architecture, Net};
use crate::error::{Error, Result};

/// One fully connected layer on the host.
#[derive(Debug, Clone)]
struct HostLayer {
    /// `[inputs, outputs]`, row-major: row `i` holds input `i`'s weights to every output.
    weight: Vec<f32>,
    /// `[outputs]`.
    bias: Vec<f32>,
}

/// An MLP's weights on the host, for [`PlainMlp::logits`].
#[derive(Debug, Clone)]
pub struct PlainMlp {
    layers: Vec<HostLayer>,
    inputs: usize,
}

impl PlainMlp {
    /// Copies an MLP's weights to the host; `None` for other architectures.
    pub fn new(network: &Network) -> Option<PlainMlp> {
        let Net::Mlp(mlp) = &network.net else {
            return None;
        };
        // The checkpoint's arrays, weight then bias per layer, input first.
        let arrays = mlp.export();
        let layers: Vec<HostLayer> = arrays
            .chunks_exact(2)
            .map(|pair| HostLayer {
                weight: pair[0].values.clone(),
                bias: pair[1].values.clone(),
            })
            .collect();
        let inputs = layers.first()?.weight.len() / layers.first()?.bias.len().max(1);
        Some(PlainMlp { layers, inputs })
    }

    /// Logits for one image of `C * H * W` values in `[0, 1]`, as the network's forward pass in
    /// inference gives them.
    pub fn logits(&self, image: &[f32]) -> Result<Vec<f32>> {
        if image.len() != self.inputs {
            return Err(Error::config(format!(
                "the network takes {} values per image, got {}",
                self.inputs,
                image.len()
            )));
        }
        let last = self.layers.len() - 1;
        let mut x = image.to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            x = dense(&x, layer, i < last);
        }
        Ok(x)
    }
}

/// `relu?(x · W + b)`, adding one weight row per non-zero input, on one thread. Reading the
/// weights from memory is the cost: splitting a layer's columns over two threads was slower at
/// these sizes (the wake-up costs more than it saves), and 256-bit fused multiply-adds were
/// no faster than the default 128-bit code (teacher 150 against 143 µs, student 68 both).
fn dense(x: &[f32], layer: &HostLayer, relu: bool) -> Vec<f32> {
    let mut y = layer.bias.clone();
    let outputs = y.len();
    for (&xi, row) in x.iter().zip(layer.weight.chunks_exact(outputs)) {
        // Zero inputs add nothing (the weights are finite after any successful training).
        if xi != 0.0 {
            for (yj, &w) in y.iter_mut().zip(row) {
                *yj += xi * w;
            }
        }
    }
    if relu {
        y.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::model::{Dropout, ModelConfig, ModelSpec};
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn gives_the_networks_logits_one_image_at_a_time() {
        let device = Device::flex();
        device.seed(3);
        let spec: ModelSpec = "mlp:50,40".parse().unwrap();
        let config = ModelConfig::new(&spec, ImageShape::gray(6, 5), 7, Dropout::NONE).unwrap();
        let network = Network::init(config, &device);
        let plain = PlainMlp::new(&network).unwrap();
        let images = Tensor::<2>::random([8, 30], Distribution::Default, &device);
        // Some exact zeros, as in real images and ReLU outputs.
        let images = images.clone().mask_fill(images.lower_elem(0.3), 0.0);
        let expected: Vec<f32> = network
            .net
            .forward(images.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let rows: Vec<f32> = images.into_data().try_to_vec().unwrap();
        for (image, want) in rows.chunks(30).zip(expected.chunks(7)) {
            let got = plain.logits(image).unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} against {w}");
            }
        }
        let err = plain.logits(&[0.0; 29]).unwrap_err().to_string();
        assert!(err.contains("takes 30 values per image, got 29"), "{err}");
    }

    #[test]
    fn refuses_a_cnn() {
        let spec: ModelSpec = "cnn:4/8".parse().unwrap();
        let config = ModelConfig::new(&spec, ImageShape::gray(8, 8), 3, Dropout::NONE).unwrap();
        assert!(PlainMlp::new(&Network::init(config, &Device::flex())).is_none());
    }
}
