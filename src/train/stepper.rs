//! One optimization step at a time on an autodiff copy of a network: the inner loop of the
//! training run, also timed by the benchmarks.

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};

use super::settings::{RngStream, TrainConfig};
use crate::compute::seed_dropout;
use crate::data::DeviceSplit;
use crate::distill::{DistillLoss, hard_loss};
use crate::error::{Error, Result};
use crate::model::{ModelConfig, Net, Network};

/// One optimization step at a time on an autodiff copy of a network: the inner loop of
/// [`train`], also timed by the benchmarks.
pub struct Stepper {
    // Always Some between calls; taken during an update so the optimizer owns the only
    // reference to the weights and can update them in place.
    net: Option<Net>,
    optim: ModuleOptimizer,
    device: Device,
    /// The epoch under way (1-based), for losses with a warm-up.
    epoch: usize,
}

impl Stepper {
    /// Prepares `network` for training on `device` (autodiff is enabled on it), seeding the
    /// device's random numbers (dropout masks) from the config's seed.
    pub fn new(network: &Network, config: &TrainConfig, device: &Device) -> Stepper {
        let ad = device.clone().autodiff();
        reseed(&ad, RngStream::Dropout.seed(config.settings().seed));
        Stepper {
            net: Some(network.net.clone().fork(&ad).train()),
            optim: config.optimizer(),
            device: ad,
            epoch: 1,
        }
    }

    /// Continues training `network` with the optimizer state saved at `optimizer` by
    /// [`Stepper::save_optimizer`]: the network's parameters take back the identities
    /// `param_ids` (from [`Stepper::param_ids`]) that the saved state is keyed by.
    pub fn resume(
        network: &Network,
        config: &TrainConfig,
        device: &Device,
        param_ids: &[u64],
        optimizer: &Path,
    ) -> Result<Stepper> {
        let mut ids = IdSetter {
            ids: param_ids.iter().map(|&i| ParamId::from(i)).collect(),
            next: 0,
        };
        let net = network.net.clone().map(&mut ids);
        if ids.next != param_ids.len() {
            return Err(Error::Checkpoint {
                path: optimizer.to_path_buf(),
                reason: format!(
                    "the saved state names {} parameters, the network has {}",
                    param_ids.len(),
                    ids.next
                ),
            });
        }
        let mut stepper = Stepper::new(
            &Network {
                config: network.config.clone(),
                net,
            },
            config,
            device,
        );
        stepper.optim = config
            .optimizer()
            .load(optimizer)
            .map_err(|e| Error::Checkpoint {
                path: optimizer.to_path_buf(),
                reason: format!("optimizer state does not load: {e:?}"),
            })?;
        Ok(stepper)
    }

    /// The identities of the network's parameters, in visiting order.
    pub fn param_ids(&self) -> Vec<u64> {
        let mut v = IdCollector(Vec::new());
        self.net
            .as_ref()
            .expect("stepper holds its network between steps")
            .visit(&mut v);
        v.0
    }

    /// Writes the optimizer's state (momentum, Adam moments and step counts) to `path`,
    /// atomically (a temporary sibling renamed into place).
    pub fn save_optimizer(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
        }
        self.optim.save(&tmp).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("writing", path, std::io::Error::other(format!("{e:?}")))
        })?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming into place", path, e))
    }

    /// Starts epoch `epoch` (1-based) of a run seeded with `seed`: dropout masks are drawn
    /// from that epoch's own stream, so an epoch's masks never depend on the epochs before.
    pub fn begin_epoch(&mut self, seed: u64, epoch: usize) {
        self.epoch = epoch;
        reseed(&self.device, RngStream::Dropout.epoch_seed(seed, epoch));
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
            Some((targets, loss)) => {
                loss.loss(logits, targets.autodiff(), y.autodiff(), self.epoch)
            }
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

/// Restarts both random streams a training step draws from: the device's (burn's own random
/// operations) and this thread's dropout masks.
fn reseed(device: &Device, seed: u64) {
    device.seed(seed);
    seed_dropout(seed);
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

/// Collects parameter identities in visiting order.
struct IdCollector(Vec<u64>);

impl ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// Gives parameters, in visiting order, the identities of a saved run.
struct IdSetter {
    ids: Vec<ParamId>,
    next: usize,
}

impl ModuleMapper for IdSetter {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(id) = self.ids.get(self.next) {
            param.id = *id;
        }
        self.next += 1;
        param
    }
}
