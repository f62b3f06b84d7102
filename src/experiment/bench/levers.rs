//! Each speed lever on its own: burn's stock piece against ours, on the teacher's shapes, in
//! the same process and alternating, so that the difference does not depend on how busy the
//! machine was between two builds.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{DropoutConfig, Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Tensor};

use super::figures::{BenchOptions, Figure, figure};
use crate::compute::{After, MaskDraw, dense_layer, dense_layer_composed, seed_dropout};
use crate::model::{DropoutLayer, Net, Network};
use crate::train::MomentumSgd;

/// Figures `lever_dropout_{burn,ours}_ms` (the teacher's three dropout masks on a batch of
/// 128, input 0.2 and hidden 0.5, forward) and `lever_sgd_{burn,ours}_ms` (one momentum update
/// of all of `teacher`'s parameters) and `lever_dense_{burn,ours}_ms` (forward and backward
/// through layers of the teacher's widths, hidden dropout 0.5, composed from burn's operations
/// or fused).
pub(super) fn lever_figures(
    opts: &BenchOptions,
    teacher: &Network,
    device: &Device,
) -> BTreeMap<String, Figure> {
    let ad = device.clone().autodiff();
    ad.seed(7);
    seed_dropout(7);
    let inputs = teacher.config.shape().len();
    let batches = dropout_batches(inputs, &ad);
    let burns: Vec<_> = batches
        .iter()
        .map(|(_, p)| DropoutConfig::new(*p).init())
        .collect();
    let ours: Vec<_> = batches.iter().map(|(_, p)| DropoutLayer::new(*p)).collect();
    // Milliseconds to apply layer `i`'s dropout to batch `i`, for every `i`.
    let masks = |apply: &dyn Fn(usize, Tensor<2>) -> Tensor<2>| {
        let t = Instant::now();
        for (i, (x, _)) in batches.iter().enumerate() {
            let _ = apply(i, x.clone()).into_data();
        }
        1e3 * t.elapsed().as_secs_f64()
    };
    let mut dropout_burn = || masks(&|i, x| burns[i].forward(x));
    let mut dropout_ours = || masks(&|i, x| ours[i].forward(x));

    let x = Tensor::<2>::random([128, inputs], Distribution::Default, &ad);
    let mut burn_sgd = (
        MomentumSgd::burn_equivalent(0.9).init(),
        Some(teacher.net.clone().fork(&ad).train()),
    );
    let mut our_sgd = (
        ModuleOptimizer::from(MomentumSgd::new(0.9)),
        Some(teacher.net.clone().fork(&ad).train()),
    );
    let update = |(optim, slot): &mut (ModuleOptimizer, Option<Net>)| {
        // The optimizer gets the only reference to the weights, as in training; the
        // gradients are made outside the timed part.
        let net = slot
            .take()
            .expect("the network is put back after every update");
        let out = net.forward(x.clone());
        let grads = GradientsParams::from_grads((out.clone() * out).mean().backward(), &net);
        let t = Instant::now();
        *slot = Some(optim.step(1e-6, net, grads));
        1e3 * t.elapsed().as_secs_f64()
    };

    let widths = [inputs, 1200, 1200, teacher.config.classes()];
    let layers: Vec<Linear> = widths
        .windows(2)
        .map(|w| LinearConfig::new(w[0], w[1]).init(&ad))
        .collect();
    let stack = |fused: bool| dense_stack_ms(&x, &layers, fused);

    alternate(
        opts,
        &mut [
            ("lever_dropout_burn_ms", &mut dropout_burn),
            ("lever_dropout_ours_ms", &mut dropout_ours),
            ("lever_sgd_burn_ms", &mut || update(&mut burn_sgd)),
            ("lever_sgd_ours_ms", &mut || update(&mut our_sgd)),
            ("lever_dense_burn_ms", &mut || stack(false)),
            ("lever_dense_ours_ms", &mut || stack(true)),
        ],
    )
}

/// Milliseconds for forward and backward through `layers` from `x`, each hidden layer followed
/// by ReLU and dropout 0.5: fused, or composed from burn's operations.
fn dense_stack_ms(x: &Tensor<2>, layers: &[Linear], fused: bool) -> f64 {
    let t = Instant::now();
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        let after = After::hidden(i + 1 < layers.len(), Some(MaskDraw::new(0.5, i as u64)));
        h = match fused {
            true => dense_layer(h, layer, after),
            false => dense_layer_composed(h, layer, after),
        };
    }
    let _ = h.sum().backward();
    1e3 * t.elapsed().as_secs_f64()
}

/// A batch of 128 for each of the teacher's dropout layers (the input's, then two hidden
/// ones), with that layer's rate.
fn dropout_batches(inputs: usize, ad: &Device) -> Vec<(Tensor<2>, f64)> {
    [(inputs, 0.2), (1200, 0.5), (1200, 0.5)]
        .into_iter()
        .map(|(width, p)| {
            let x = Tensor::<2>::random([128, width], Distribution::Default, ad);
            (x.require_grad(), p)
        })
        .collect()
}

/// Times every lever in turn, five times per repeat, and sums up what the repeats after the
/// warm-up measured.
fn alternate(
    opts: &BenchOptions,
    levers: &mut [(&'static str, &mut dyn FnMut() -> f64)],
) -> BTreeMap<String, Figure> {
    let mut runs: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for rep in 0..opts.warmup + opts.reps.max(1) {
        // Alternating, a few times per repeat: each figure sees the same machine.
        for _ in 0..5 {
            for (name, time) in levers.iter_mut() {
                let v = time();
                if rep >= opts.warmup {
                    runs.entry(name).or_default().push(v);
                }
            }
        }
    }
    runs.into_iter()
        .map(|(name, v)| (name.to_string(), figure(v)))
        .collect()
}
