//! The seam every trainable architecture plugs into: the [`Architecture`] trait (forward to
//! logits, diagnostics, the output-bias shift, and its tensors for a checkpoint), and [`Net`],
//! the burn module that the training loop and the optimizer hold, whichever architecture it is.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::cnn::Cnn;
use super::layers::Layer;
use super::mlp::{CHUNK, Mlp};

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

/// A trainable network of any architecture: the burn module the optimizer updates.
#[derive(Module, Debug)]
pub enum Net {
    /// A multilayer perceptron.
    Mlp(Mlp),
    /// A convolutional network.
    Cnn(Cnn),
}

impl Net {
    pub(super) fn arch(&self) -> &dyn Architecture {
        match self {
            Net::Mlp(m) => m,
            Net::Cnn(m) => m,
        }
    }

    fn arch_mut(&mut self) -> &mut dyn Architecture {
        match self {
            Net::Mlp(m) => m,
            Net::Cnn(m) => m,
        }
    }

    /// Logits for a batch (see [`Architecture::forward`]).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.arch().forward(x)
    }

    /// Logits for many images, computed in chunks of at most 2,048 rows to bound memory.
    pub fn logits_chunked(&self, images: &Tensor<2>) -> Tensor<2> {
        let [n, _] = images.dims();
        if n <= CHUNK {
            return self.forward(images.clone());
        }
        let parts: Vec<Tensor<2>> = (0..n)
            .step_by(CHUNK)
            .map(|s| self.forward(images.clone().slice(s..(s + CHUNK).min(n))))
            .collect();
        Tensor::cat(parts, 0)
    }

    /// See [`Architecture::silent_units`].
    pub fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        self.arch().silent_units(images)
    }

    /// See [`Architecture::shift_output_bias`].
    pub fn shift_output_bias(&mut self, classes: &[usize], delta: f32) {
        self.arch_mut().shift_output_bias(classes, delta)
    }

    /// See [`Architecture::layers`].
    pub fn layers(&self) -> Vec<Layer> {
        self.arch().layers()
    }

    /// See [`Architecture::export`].
    pub fn export(&self) -> Vec<NamedArray> {
        self.arch().export()
    }

    /// See [`Architecture::import`].
    pub fn import(
        &mut self,
        source: &mut Source<'_>,
        device: &Device,
    ) -> std::result::Result<(), String> {
        self.arch_mut().import(source, device)
    }
}
