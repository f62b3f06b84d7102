//! Students out for PyTorch: a trained network as the source of an equivalent
//! `torch.nn.Sequential` and its `state_dict` in safetensors, with PyTorch's names and layouts,
//! built by walking the network's [`Layer`]s.

use std::collections::HashMap;

use super::Predictor;
use super::architecture::NamedArray;
use super::checkpoint::{Network, f32_safetensors};
use super::layers::{Layer, Norm};

/// The network as `torch.nn.Sequential` source and its `state_dict`, each module's tensors
/// named by its position. An MLP's module starts with `nn.Flatten()`, so that it takes
/// `[N, C, H, W]` images as well as flat rows (which is why its first Linear is named `1`).
fn sequential(net: &Network) -> (String, Vec<NamedArray>) {
    let layers = net.net.layers();
    let mut parts: Vec<String> = Vec::new();
    let mut state = Vec::new();
    if matches!(layers.first(), Some(Layer::Dense { .. })) {
        parts.push("nn.Flatten()".into());
    }
    for layer in &layers {
        let index = parts.len();
        let named = |a: &NamedArray, to: &str| NamedArray {
            name: format!("{index}.{to}"),
            ..a.clone()
        };
        let module = match layer {
            Layer::Unflatten([c, h, w]) => format!("nn.Unflatten(1, ({c}, {h}, {w}))"),
            Layer::Conv3x3 { weight, bias } => {
                state.extend([named(weight, "weight"), named(bias, "bias")]);
                format!(
                    "nn.Conv2d({}, {}, 3, padding=1)",
                    weight.shape[1], weight.shape[0]
                )
            }
            Layer::BatchNorm(Norm {
                gamma,
                beta,
                mean,
                var,
                ..
            }) => {
                state.extend([
                    named(gamma, "weight"),
                    named(beta, "bias"),
                    named(mean, "running_mean"),
                    named(var, "running_var"),
                ]);
                // PyTorch's BatchNorm2d also holds a step counter; it is not used at inference.
                state.push(NamedArray {
                    name: format!("{index}.num_batches_tracked"),
                    shape: Vec::new(),
                    values: vec![0.0],
                });
                format!("nn.BatchNorm2d({})", gamma.values.len())
            }
            Layer::MaxPool2 => "nn.MaxPool2d(2)".into(),
            Layer::Relu => "nn.ReLU()".into(),
            Layer::Flatten => "nn.Flatten()".into(),
            Layer::Dense { weight, bias } => {
                let (rows, cols) = (weight.shape[0], weight.shape[1]);
                state.push(NamedArray {
                    name: format!("{index}.weight"),
                    shape: vec![cols, rows],
                    values: transposed(&weight.values, rows, cols),
                });
                state.push(named(bias, "bias"));
                format!("nn.Linear({rows}, {cols})")
            }
        };
        parts.push(module);
    }
    (format!("nn.Sequential({})", parts.join(", ")), state)
}

/// PyTorch's Linear holds `[out, in]`; burn's holds `[in, out]`.
fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// Python source of the network's equivalent `torch.nn.Sequential`.
pub fn torch_module(net: &Network) -> String {
    sequential(net).0
}

/// The safetensors bytes of the PyTorch `state_dict` of the network's equivalent
/// `torch.nn.Sequential` ([`torch_module`]): PyTorch's names and layouts.
pub fn export_torch(net: &Network) -> std::result::Result<Vec<u8>, String> {
    let (module, state) = sequential(net);
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("distill.architecture".to_string(), net.describe()),
        ("distill.torch_module".to_string(), module),
    ]);
    f32_safetensors(&state, meta)
}
