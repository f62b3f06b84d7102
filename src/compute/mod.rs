//! Stage 1, compute: where the arithmetic runs and the kernels that make it fast on a CPU.
//!
//! Owns: the compute device, the thread pool and the denormals setting ([`compute_device`],
//! [`init_threads`]); the build's identity ([`build_id`]); the SIMD wrapper (`wide`) and the
//! dropout mask stream ([`seed_dropout`], `MaskDraw`); the fused dense, convolution, batch-norm
//! and pooling kernels that burn's autodiff calls through its backend extension (`fused`); and
//! the batch-1 engine that serves an MLP one image at a time ([`PlainMlp`]).
//! May use: only the foundation modules (`error`, `fsutil`). It knows tensors and arrays of
//! weights, never a model, a dataset or a loss: `model` hands it layers, and it hands back
//! numbers.

mod build;
mod device;
mod fused;
mod mask;
mod plain;
mod wide;

pub use build::{BURN_VERSION, build_commit, build_id};
pub use device::{DENORMALS_SETTINGS, compute_device, flushes_denormals, init_threads, threads};
pub(crate) use fused::{
    After, batch_norm_layer, conv_layer, dense_layer, dense_layer_composed, pool_relu,
};
pub use mask::seed_dropout;
pub(crate) use mask::{DropoutStream, MaskDraw, next_key};
pub use plain::PlainMlp;
pub(crate) use wide::wide;
