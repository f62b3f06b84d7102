//! Stage 2, model: architectures, trained networks, their checkpoints, and ensembles.
//!
//! Owns: model specs (`mlp:1200,1200`), the [`Architecture`] seam that every trainable network
//! implements, the checkpoint format, and [`Predictor`], the inference interface that every
//! classifier (a network, an ensemble, later foreign teachers) offers the stages above.
//! May use: `data` (image shapes) and the foundation modules.

mod checkpoint;
mod ensemble;
mod mlp;
mod net;
mod spec;

use burn::tensor::Tensor;

use crate::data::ImageShape;

pub use checkpoint::{
    COMPLETE_FILE, Network, WEIGHTS_FILE, clear_complete, finished_run, mark_complete, weights_path,
};
pub use ensemble::{Classifier, ENSEMBLE_FILE};
pub use mlp::{Mlp, MlpConfig};
pub use net::{Architecture, NamedArray, Net, Source};
pub use spec::{Dropout, MAX_WIDTH, ModelConfig, ModelSpec};

/// What every classifier offers the rest of the library: logits for a batch of images and a
/// description of its shape. Implemented by single networks and by ensembles.
pub trait Predictor {
    /// Shape of the images it takes.
    fn shape(&self) -> ImageShape;
    /// Values per input image (`C * H * W`).
    fn inputs(&self) -> usize {
        self.shape().len()
    }
    /// Output classes.
    fn classes(&self) -> usize;
    /// Weights and biases in total.
    fn params(&self) -> usize;
    /// Human-readable architecture.
    fn describe(&self) -> String;
    /// Log-probabilities at temperature `t` for `[n, inputs]` images (chunked internally).
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Tensor<2>;
    /// Logits at T = 1 (for an ensemble: log of the averaged probabilities).
    fn logits(&self, images: &Tensor<2>) -> Tensor<2>;
    /// ReLU units per hidden layer that never fire on `images` (see
    /// [`Architecture::silent_units`]); empty for an ensemble.
    fn silent_units(&self, _images: &Tensor<2>) -> Vec<usize> {
        Vec::new()
    }
}
