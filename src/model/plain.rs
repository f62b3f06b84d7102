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
use super::wide::wide;
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

/// Output columns summed in registers at a time: 4 AVX-512 vectors. On the 2-core Intel Xeon,
/// in one process over the same 200 images, blocks of 128 took 2 to 4% longer than 64, 256 and
/// 32 took 5 to 28% longer.
const BLOCK: usize = 64;

/// `relu?(x · W + b)` on one thread, adding one weight row per non-zero input. Reading the
/// weights is the cost: splitting a layer's columns over two threads was slower at these sizes
/// (the wake-up costs more than it saves). Each block of [`BLOCK`] outputs is summed in
/// registers over all the non-zero inputs before the next, so the outputs are not loaded and
/// stored again for every input row. Every output is still the bias plus the products in the
/// order of the inputs, so the values are the row-by-row loop's bits.
fn dense(x: &[f32], layer: &HostLayer, relu: bool) -> Vec<f32> {
    let outputs = layer.bias.len();
    // Zero inputs add nothing (the weights are finite after any successful training).
    let rows: Vec<(f32, &[f32])> = x
        .iter()
        .zip(layer.weight.chunks_exact(outputs))
        .filter(|(xi, _)| **xi != 0.0)
        .map(|(&xi, row)| (xi, row))
        .collect();
    let mut y = layer.bias.clone();
    let blocks = outputs / BLOCK;
    let (whole, tail) = y.split_at_mut(blocks * BLOCK);
    wide(|| {
        for (b, out) in whole.chunks_exact_mut(BLOCK).enumerate() {
            let mut acc: [f32; BLOCK] = out.try_into().unwrap_or([0.0; BLOCK]);
            for &(xi, row) in &rows {
                let w: &[f32; BLOCK] = row[b * BLOCK..][..BLOCK]
                    .try_into()
                    .unwrap_or(&[0.0; BLOCK]);
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += xi * w;
                }
            }
            out.copy_from_slice(&acc);
        }
    });
    for &(xi, row) in &rows {
        for (yj, &w) in tail.iter_mut().zip(&row[blocks * BLOCK..]) {
            *yj += xi * w;
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
    fn the_blocked_layer_gives_the_row_loops_bits() {
        // Widths with and without a tail after the last whole block; a third of inputs zero.
        for (inputs, outputs) in [(70, 200), (33, 128), (5, 7)] {
            let value = |i: usize| ((i as f32) * 0.618_034).sin();
            let layer = HostLayer {
                weight: (0..inputs * outputs).map(value).collect(),
                bias: (0..outputs).map(|i| value(i + 7) * 0.1).collect(),
            };
            let x: Vec<f32> = (0..inputs)
                .map(|i| if i % 3 == 0 { 0.0 } else { value(i + 11) })
                .collect();
            for relu in [false, true] {
                let mut want = layer.bias.clone();
                for (&xi, row) in x.iter().zip(layer.weight.chunks_exact(outputs)) {
                    for (yj, &w) in want.iter_mut().zip(row) {
                        *yj += xi * w;
                    }
                }
                if relu {
                    want.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&dense(&x, &layer, relu)), bits(&want));
            }
        }
    }

    #[test]
    fn refuses_a_cnn() {
        let spec: ModelSpec = "cnn:4/8".parse().unwrap();
        let config = ModelConfig::new(&spec, ImageShape::gray(8, 8), 3, Dropout::NONE).unwrap();
        assert!(PlainMlp::new(&Network::init(config, &Device::flex())).is_none());
    }
}
