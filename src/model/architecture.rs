//! The seam every trainable architecture plugs into: the [`Architecture`] trait (forward to
//! logits, diagnostics, the output-bias shift, its tensors for a checkpoint and its layers for
//! the exporters), and the named host arrays a checkpoint stores.

use burn::tensor::{Device, Tensor};

use super::layers::Layer;

/// Reads a named tensor of a given shape from a checkpoint, as host floats.
pub type Source<'a> = dyn FnMut(&str, &[usize]) -> std::result::Result<Vec<f32>, String> + 'a;

/// One tensor of a model as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// Stable name (`layers.0.weight`, ...).
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl NamedArray {
    /// Copies a tensor of any rank to the host under `name`.
    pub fn of<const D: usize>(name: String, t: Tensor<D>) -> NamedArray {
        NamedArray {
            name,
            shape: t.dims().to_vec(),
            values: t.into_data().try_to_vec().unwrap_or_default(),
        }
    }
}

/// What every trainable architecture offers. A new kind of model (a CNN, ...) implements this
/// and becomes a variant of [`Net`]; training, evaluation and checkpoints need no new branch.
pub trait Architecture {
    /// Logits `[batch, classes]` for images `[batch, C*H*W]` in `[0, 1]`. Dropout and other
    /// training-only behaviour is active only on an autodiff device in training mode.
    fn forward(&self, x: Tensor<2>) -> Tensor<2>;

    /// For each hidden layer, how many ReLU units output zero on every one of `images`. Such
    /// units pass no gradient and so never recover: capacity lost, typically to a few
    /// oversized early steps.
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize>;

    /// Adds `delta` to the output bias of each class in `classes` (bias adjustment for classes
    /// a student never saw in its transfer set).
    fn shift_output_bias(&mut self, classes: &[usize], delta: f32);

    /// Every tensor, named, for a checkpoint.
    fn export(&self) -> Vec<NamedArray>;

    /// Replaces every tensor with the one `source` gives for its name and current shape.
    fn import(
        &mut self,
        source: &mut Source<'_>,
        device: &Device,
    ) -> std::result::Result<(), String>;

    /// The inference-time forward pass (no dropout) as layers, from the flat rows
    /// [`Architecture::forward`] takes to the logits: what every exporter walks.
    fn layers(&self) -> Vec<Layer>;
}
