//! SGD with heavy-ball momentum, updated in one pass over each parameter.
//!
//! burn's `Sgd` with momentum spends five element-wise passes and two fresh buffers per parameter
//! and step (scale the gradient, scale the velocity, add, scale by the rate, subtract). This
//! optimizer reads the gradient once and rewrites the velocity and the weights in place, with
//! the same arithmetic in the same order (`v = m·v + g`, `w = w − lr·v`), so its results are
//! bit-identical to burn's with dampening 0 and no Nesterov term. Its state is stored under the
//! same names as burn's (`momentum.velocity`), so optimizer files written by either load in
//! the other.

use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    LearningRate, Optimizer, RecordState, SgdConfig, StateSink, StateSource, join_path,
};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::compute::wide;

/// Elements per parallel task: below a few of these, the thread pool costs more than it saves.
const GRAIN: usize = 1 << 16;

/// SGD with momentum `momentum` (dampening 0, no Nesterov), one pass per parameter.
#[derive(Clone, Debug)]
pub struct MomentumSgd {
    momentum: f32,
}

impl MomentumSgd {
    /// An optimizer whose velocity decays by `momentum` per step.
    pub fn new(momentum: f32) -> MomentumSgd {
        MomentumSgd { momentum }
    }

    /// burn's own optimizer with the same update: where the weights are not in host memory
    /// (a GPU), and as the reference this one is measured and tested against.
    pub fn burn_equivalent(momentum: f32) -> SgdConfig {
        let config = MomentumConfig::new()
            .with_momentum(f64::from(momentum))
            .with_dampening(0.0);
        SgdConfig::new().with_momentum(Some(config))
    }
}

/// Per-parameter state: the velocity, the running sum of past gradients decayed by the
/// momentum, with the parameter's shape.
#[derive(Clone)]
pub struct MomentumSgdState<const D: usize> {
    velocity: Tensor<D>,
}

/// burn's `SgdState` nests the velocity as `momentum.velocity`; the same name keeps optimizer
/// files interchangeable.
const GROUP: &str = "momentum";
const LEAF: &str = "velocity";

impl<const D: usize> RecordState for MomentumSgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(
            &join_path(prefix, GROUP),
            LEAF,
            self.velocity.clone().into_data(),
        );
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let data = src.take_tensor(&join_path(prefix, GROUP), LEAF)?;
        Some(MomentumSgdState {
            velocity: Tensor::from_data(data, device),
        })
    }
}

impl Optimizer for MomentumSgd {
    type State<const D: usize> = MomentumSgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let velocity = state.map(|s| s.velocity);
        let data = |t: TensorData| Tensor::<D>::from_data(t, &device);
        let (w, v) = match one_pass(
            tensor.into_data(),
            grad.into_data(),
            velocity.map(Tensor::into_data),
            self.momentum,
            lr as f32,
        ) {
            Ok((w, v)) => (data(w), data(v)),
            // Not 32-bit floats: the same update in tensor operations.
            Err(parts) => {
                let (w, g, v) = *parts;
                let g = data(g);
                let v = match v {
                    Some(v) => g + data(v).mul_scalar(self.momentum),
                    None => g,
                };
                (data(w) - v.clone().mul_scalar(lr), v)
            }
        };
        (w, Some(MomentumSgdState { velocity: v }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        MomentumSgdState {
            velocity: state.velocity.to_device(device),
        }
    }
}

/// Weights, gradient and velocity (absent before the first step) as tensor data.
type Parts = (TensorData, TensorData, Option<TensorData>);

/// The update on 32-bit floats, in place in the weights' and velocity's buffers. Gives the
/// parts back untouched when they are not 32-bit floats.
fn one_pass(
    mut w: TensorData,
    g: TensorData,
    mut v: Option<TensorData>,
    momentum: f32,
    lr: f32,
) -> std::result::Result<(TensorData, TensorData), Box<Parts>> {
    // Other dtypes, or buffers read back from a file without 4-byte alignment, take the
    // tensor-operation path.
    let fits = w.as_mut_slice::<f32>().is_ok()
        && g.as_slice::<f32>().is_ok()
        && v.as_mut().is_none_or(|v| v.as_mut_slice::<f32>().is_ok());
    if !fits {
        return Err(Box::new((w, g, v)));
    }
    let (Ok(ws), Ok(gs)) = (w.as_mut_slice::<f32>(), g.as_slice::<f32>()) else {
        unreachable!("checked above");
    };
    let v = match v {
        None => {
            // The first velocity is the gradient itself, as in burn.
            update_chunks(ws, gs, |w, g| *w -= lr * g);
            g
        }
        Some(mut v) => {
            let vs = v.as_mut_slice::<f32>().expect("checked above");
            update_velocity(ws, vs, gs, momentum, lr);
            v
        }
    };
    Ok((w, v))
}

/// `w -= lr·v` after `v = m·v + g`, element by element, in parallel over large parameters.
fn update_velocity(w: &mut [f32], v: &mut [f32], g: &[f32], momentum: f32, lr: f32) {
    let body = |(w, v): (&mut [f32], &mut [f32]), g: &[f32]| {
        wide(move || {
            for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                // Same operand order as burn's momentum (g·1 + v·m, then w − v·lr):
                // bit-identical.
                *v = g + *v * momentum;
                *w -= *v * lr;
            }
        })
    };
    if w.len() < 2 * GRAIN {
        body((w, v), g);
    } else {
        w.par_chunks_mut(GRAIN)
            .zip(v.par_chunks_mut(GRAIN))
            .zip(g.par_chunks(GRAIN))
            .for_each(|(wv, g)| body(wv, g));
    }
}

/// Applies `f(w, g)` to each weight and its gradient, in parallel over large parameters.
fn update_chunks(w: &mut [f32], g: &[f32], f: impl Fn(&mut f32, f32) + Sync) {
    let body = |w: &mut [f32], g: &[f32]| wide(|| w.iter_mut().zip(g).for_each(|(w, g)| f(w, *g)));
    if w.len() < 2 * GRAIN {
        body(w, g);
    } else {
        w.par_chunks_mut(GRAIN)
            .zip(g.par_chunks(GRAIN))
            .for_each(|(w, g)| body(w, g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use burn::tensor::Distribution;

    fn bits(layer: &Linear) -> Vec<u32> {
        let w: Vec<f32> = layer.weight.val().into_data().try_to_vec().unwrap();
        w.iter().map(|x| x.to_bits()).collect()
    }

    fn burn_sgd() -> ModuleOptimizer {
        MomentumSgd::burn_equivalent(0.9).init()
    }

    /// `steps` steps of `optim` on `layer`, whose loss is its mean squared output on `x`.
    fn train(
        optim: &mut ModuleOptimizer,
        mut layer: Linear,
        x: &Tensor<2>,
        steps: usize,
    ) -> Linear {
        for step in 0..steps {
            let y = layer.forward(x.clone());
            let grads = GradientsParams::from_grads((y.clone() * y).mean().backward(), &layer);
            layer = optim.step(0.1 / (step + 1) as f64, layer, grads);
        }
        layer
    }

    #[test]
    fn updates_bit_for_bit_as_burns_sgd_with_momentum_and_shares_its_state_file() {
        let device = Device::flex().autodiff();
        device.seed(7);
        // Large enough that the update runs in parallel chunks.
        let start = LinearConfig::new(300, 500).init(&device);
        let x = Tensor::<2>::random([4, 300], Distribution::Default, &device);
        let mut ours = ModuleOptimizer::from(MomentumSgd::new(0.9));
        let mut theirs = burn_sgd();
        let a = train(&mut ours, start.clone(), &x, 3);
        let b = train(&mut theirs, start.clone(), &x, 3);
        assert_eq!(bits(&a), bits(&b));
        assert_ne!(bits(&a), bits(&start), "the steps must move the weights");
        // burn's optimizer continues from our saved velocity exactly as ours does.
        let mut reloaded = burn_sgd().from_bytes(ours.into_bytes().unwrap()).unwrap();
        let mut ours = ModuleOptimizer::from(MomentumSgd::new(0.9))
            .from_bytes(theirs.into_bytes().unwrap())
            .unwrap();
        let c = train(&mut ours, a.clone(), &x, 2);
        let d = train(&mut reloaded, a, &x, 2);
        assert_eq!(bits(&c), bits(&d));
    }
}
