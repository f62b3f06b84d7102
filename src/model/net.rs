//! [`Net`], the burn module that the training loop and the optimizer hold, whichever
//! architecture it is: each variant implements [`Architecture`].

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::architecture::{Architecture, NamedArray, Source};
use super::cnn::Cnn;
use super::layers::Layer;
use super::mlp::{CHUNK, Mlp};

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
