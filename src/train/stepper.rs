//! One optimization step at a time on an autodiff copy of a network: the inner loop of the
//! training run, also timed by the benchmarks.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};

use super::settings::{RngStream, TrainConfig};
use crate::data::DeviceSplit;
use crate::distill::{DistillLoss, hard_loss};
use crate::model::{ModelConfig, Net, Network};

/// One optimization step at a time on an autodiff copy of a network: the inner loop of
/// [`train`], also timed by the benchmarks.
pub struct Stepper {
    // Always Some between calls; taken during an update so the optimizer owns the only
    // reference to the weights and can update them in place.
    net: Option<Net>,
    optim: ModuleOptimizer,
    device: Device,
}

impl Stepper {
    /// Prepares `network` for training on `device` (autodiff is enabled on it), seeding the
    /// device's random numbers (dropout masks) from the config's seed.
    pub fn new(network: &Network, config: &TrainConfig, device: &Device) -> Stepper {
        let ad = device.clone().autodiff();
        ad.seed(RngStream::Dropout.seed(config.settings().seed));
        Stepper {
            net: Some(network.net.clone().fork(&ad).train()),
            optim: config.optimizer(),
            device: ad,
        }
    }

    /// Starts epoch `epoch` (1-based) of a run seeded with `seed`: dropout masks are drawn
    /// from that epoch's own stream, so an epoch's masks never depend on the epochs before.
    pub fn begin_epoch(&self, seed: u64, epoch: usize) {
        self.device.seed(RngStream::Dropout.epoch_seed(seed, epoch));
    }

    /// One step on a batch: hard-label cross-entropy, or the distillation loss when `soft`
    /// holds the teacher's log-probabilities (at the loss's temperature) for the batch. Returns the loss before the
    /// update (NaN or infinite if training diverged; the update is then skipped).
    pub fn step(
        &mut self,
        x: Tensor<2>,
        y: Tensor<1, Int>,
        soft: Option<(Tensor<2>, &dyn DistillLoss)>,
        lr: f64,
    ) -> f32 {
        let net = self
            .net
            .take()
            .expect("stepper holds its network between steps");
        let logits = net.forward(x.autodiff());
        let loss = match soft {
            None => hard_loss(logits, y.autodiff()),
            Some((targets, loss)) => loss.loss(logits, targets.autodiff(), y.autodiff()),
        };
        let value = loss.clone().into_scalar::<f32>();
        self.net = Some(if value.is_finite() {
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            self.optim.step(lr, net, grads)
        } else {
            net
        });
        value
    }

    /// The network being trained, as a plain (inference) copy.
    pub fn network(&self, config: &ModelConfig) -> Network {
        Network {
            config: config.clone(),
            net: self
                .net
                .as_ref()
                .expect("stepper holds its network between steps")
                .valid(),
        }
    }
}

/// Counts classification errors of `net` on a device split.
pub fn count_errors(net: &Net, split: &DeviceSplit) -> usize {
    if split.len == 0 {
        return 0;
    }
    let pred = net
        .logits_chunked(&split.images)
        .argmax(1)
        .flatten::<1>(0, 1);
    let wrong = pred.not_equal(split.labels.clone()).int().sum();
    wrong.into_scalar::<i64>() as usize
}
