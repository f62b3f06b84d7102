//! The serving path of a trained network: an MLP's weights copied to the host for the compute
//! stage's batch-1 engine ([`PlainMlp`]), its input standardization folded into the first layer.

use crate::compute::PlainMlp;

use super::checkpoint::Network;
use super::net::Net;

/// The network's batch-1 path on at most `threads` threads (`None`: as many as the thread pool
/// has, at most one per core); `None` for architectures other than an MLP.
pub fn plain_mlp(network: &Network, threads: Option<usize>) -> Option<PlainMlp> {
    let Net::Mlp(mlp) = &network.net else {
        return None;
    };
    let layers: Vec<(Vec<f32>, Vec<f32>)> = mlp
        .inference_export()
        .chunks_exact(2)
        .map(|pair| (pair[0].values.clone(), pair[1].values.clone()))
        .collect();
    match threads {
        Some(t) => PlainMlp::with_threads(layers, t),
        None => PlainMlp::new(layers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::model::{Dropout, ModelConfig, ModelSpec};
    use burn::tensor::{Device, Distribution, Tensor};

    /// A freshly initialized network of `spec` for gray `h` × `w` images and `classes` classes.
    fn fresh(spec: &str, (h, w): (usize, usize), classes: usize, device: &Device) -> Network {
        let spec: ModelSpec = spec.parse().unwrap();
        let shape = ImageShape::gray(h, w);
        Network::init(
            ModelConfig::new(&spec, shape, classes, Dropout::NONE).unwrap(),
            device,
        )
    }

    /// `n` random images of `width` values in [0, 1), those below `zero_below` exactly zero, as
    /// in real images and ReLU outputs.
    fn images(n: usize, width: usize, zero_below: f32, device: &Device) -> Tensor<2> {
        let images = Tensor::<2>::random([n, width], Distribution::Default, device);
        images.clone().mask_fill(images.lower_elem(zero_below), 0.0)
    }

    #[test]
    fn gives_the_networks_logits_one_image_at_a_time() {
        let device = Device::flex();
        device.seed(3);
        let network = fresh("mlp:50,40", (6, 5), 7, &device);
        let plain = plain_mlp(&network, None).unwrap();
        let images = images(8, 30, 0.3, &device);
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
    fn helpers_give_the_same_bits_as_one_thread() {
        let device = Device::flex();
        device.seed(5);
        // Layers large enough to split (784 x 300 and 300 x 200), and a logits layer that is not.
        let network = fresh("mlp:300,200", (28, 28), 10, &device);
        let alone = plain_mlp(&network, Some(1)).unwrap();
        assert_eq!(alone.threads(), 1);
        let rows: Vec<f32> = images(20, 784, 0.6, &device)
            .into_data()
            .try_to_vec()
            .unwrap();
        let want: Vec<Vec<f32>> = rows.chunks(784).map(|i| alone.logits(i).unwrap()).collect();
        for threads in [2, 3, 4] {
            let team = plain_mlp(&network, Some(threads)).unwrap();
            assert_eq!(team.threads(), threads);
            // Back to back (helpers spinning), then after the helpers have parked.
            for pause in [0, 2] {
                for (image, want) in rows.chunks(784).zip(&want) {
                    std::thread::sleep(std::time::Duration::from_millis(pause));
                    assert_eq!(&team.logits(image).unwrap(), want, "{threads} threads");
                }
            }
        }
        // Callers on several threads at once, through two networks of other widths, share one
        // team; those that find it busy run alone.
        let team = plain_mlp(&network, Some(2)).unwrap();
        let other = fresh("mlp:500,90", (28, 28), 10, &device);
        let other_alone = plain_mlp(&other, Some(1)).unwrap();
        let other_want: Vec<Vec<f32>> = rows
            .chunks(784)
            .map(|i| other_alone.logits(i).unwrap())
            .collect();
        let other_team = plain_mlp(&other, Some(3)).unwrap();
        let rows = &rows;
        std::thread::scope(|s| {
            for caller in 0..4 {
                let (net, want) = match caller % 2 {
                    0 => (&team, &want),
                    _ => (&other_team, &other_want),
                };
                s.spawn(move || {
                    for _ in 0..5 {
                        for (image, want) in rows.chunks(784).zip(want) {
                            assert_eq!(&net.logits(image).unwrap(), want);
                        }
                    }
                });
            }
        });
        // A network too small to split starts no helpers.
        let small = fresh("mlp:20", (6, 5), 3, &device);
        assert_eq!(plain_mlp(&small, Some(4)).unwrap().threads(), 1);
    }

    #[test]
    fn refuses_a_cnn() {
        let cnn = fresh("cnn:4/8", (8, 8), 3, &Device::flex());
        assert!(plain_mlp(&cnn, None).is_none());
    }
}
