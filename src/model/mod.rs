//! Stage 3, model: architectures, trained networks, their checkpoints, and ensembles.
//!
//! Owns: model specs (`mlp:1200,1200`), the [`Architecture`] seam that every trainable network
//! implements, its inference pass as neutral [`Layer`]s, the exporters that walk them (ONNX for
//! onnxruntime, a PyTorch `state_dict`), the checkpoint format, ONNX in (foreign teachers run
//! with tract or onnxruntime), tree-ensemble teachers evaluated natively ([`TreeEnsemble`]), an
//! MLP's batch-1 path ([`plain_mlp`], on compute's engine), and [`Predictor`], the inference
//! interface that every classifier (a network, an ONNX model, an ensemble) offers the stages
//! above.
//! May use: `compute` (kernels, the batch-1 engine), `data` (image shapes) and the foundation
//! modules.

mod architecture;
mod checkpoint;
mod cnn;
mod dense;
mod dropout;
mod ensemble;
mod layers;
mod mlp;
mod net;
mod onnx;
mod onnx_export;
mod serving;
mod spec;
mod torch_export;
mod trees;

use burn::tensor::Tensor;

use crate::compute::PlainMlp;
use crate::data::ImageShape;
use crate::error::Result;

pub use architecture::{Architecture, NamedArray, Source};
pub use checkpoint::{
    COMPLETE_FILE, Network, WEIGHTS_FILE, clear_complete, copy_model, finished_run, mark_complete,
    weights_path,
};
pub use cnn::{Cnn, CnnConfig, MAX_CONV_BLOCKS};
pub use dropout::{Dropout, DropoutLayer};
pub use ensemble::{Classifier, ENSEMBLE_FILE, OpenOptions, RawOutputs};
pub use layers::{Layer, Norm};
pub use mlp::{Mlp, MlpConfig};
pub use net::Net;
pub use onnx::{InputNorm, OnnxModel, OnnxOptions, TeacherOutputs, is_onnx};
pub use onnx_export::{
    ONNX_FEATURES, ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT, export_onnx, onnx_input_name,
};
pub use serving::plain_mlp;
pub use spec::{MAX_WIDTH, ModelConfig, ModelSpec};
pub use torch_export::{export_torch, torch_module};
pub use trees::TreeEnsemble;

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
    /// Fallible because a foreign model can fail to run or give non-finite outputs.
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Result<Tensor<2>>;
    /// Logits at T = 1 (for an ensemble: log of the averaged probabilities).
    fn logits(&self, images: &Tensor<2>) -> Result<Tensor<2>>;
    /// ReLU units per hidden layer that never fire on `images` (see
    /// [`Architecture::silent_units`]); empty for an ensemble.
    fn silent_units(&self, _images: &Tensor<2>) -> Vec<usize> {
        Vec::new()
    }
    /// The plain one-image-at-a-time path ([`PlainMlp`]) where the model has one (a single
    /// MLP), for serving and for timing latency at batch 1.
    fn serving_path(&self) -> Option<PlainMlp> {
        None
    }
}
