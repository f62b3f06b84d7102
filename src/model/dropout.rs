//! Dropout rates as a model is configured with them, and the dropout layer burn's modules
//! hold. Its masks come from the compute stage's stream (`crate::compute::MaskDraw`), drawn in
//! one parallel pass and the same for any thread count.

use burn::module::{Content, DisplaySettings, Flag, Module, ModuleDisplay, Param};
use burn::tensor::{Tensor, TensorData};

use serde::{Deserialize, Serialize};

use crate::compute::{MaskDraw, next_key};
use crate::error::{Error, Result};

/// A dropout layer: zeroes each input with probability `prob` while training, scaling the rest
/// by `1 / (1 - prob)`; the identity in inference.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct DropoutLayer {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub prob: f64,
    /// Whether the layer takes part in training (burn's `train()`/`valid()` switch it).
    pub training: Param<Flag>,
}

impl DropoutLayer {
    /// A layer dropping with probability `prob`, already checked to lie in `[0, 1)`.
    pub fn new(prob: f64) -> DropoutLayer {
        DropoutLayer {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// The mask of this layer's next call when it would drop anything (training mode on an
    /// autodiff device, `prob > 0`), taking that call's key; `None` when it is the identity.
    pub(crate) fn next_draw(&self, device: &burn::tensor::Device) -> Option<MaskDraw> {
        (self.training.is_enabled() && device.is_autodiff() && self.prob > 0.0)
            .then(|| MaskDraw::new(1.0 - self.prob, next_key()))
    }

    /// Applies dropout on an autodiff device in training mode; otherwise returns `input`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        let Some(draw) = self.next_draw(&device) else {
            return input;
        };
        let keep = draw.keep();
        // On a GPU the mask is drawn where the tensor lives; copying one up each step would
        // cost more than the generator saves.
        if cfg!(feature = "cuda") {
            let mask = input.random_like(burn::tensor::Distribution::Bernoulli(keep));
            return input * mask * (1.0 / keep);
        }
        let shape = input.shape();
        let values = draw.values(shape.num_elements());
        input * Tensor::<D>::from_data(TensorData::new(values, shape), &device)
    }
}

impl ModuleDisplay for DropoutLayer {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content.add("prob", &self.prob).optional()
    }
}

/// Training-time regularization of a model: dropout on the inputs and on hidden units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Dropout probability on the input pixels, in [0, 1).
    pub input: f64,
    /// Dropout probability on each hidden layer's output, in [0, 1).
    pub hidden: f64,
}

impl Dropout {
    /// No dropout.
    pub const NONE: Dropout = Dropout {
        input: 0.0,
        hidden: 0.0,
    };

    /// Rejects probabilities outside [0, 1).
    pub fn check(self) -> Result<Dropout> {
        for (name, p) in [
            ("input dropout", self.input),
            ("hidden dropout", self.hidden),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::config(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        Ok(self)
    }
}
