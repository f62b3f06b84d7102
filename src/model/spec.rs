//! Model specs (`mlp:1200,1200` on the command line) and the checked architecture a checkpoint
//! stores. A new kind of model adds a variant to [`ModelSpec`] and [`ModelConfig`].

use serde::{Deserialize, Serialize};

use super::cnn::{CnnConfig, MAX_CONV_BLOCKS};
use super::dropout::Dropout;
use super::mlp::MlpConfig;
use super::net::Net;
use crate::data::{ImageShape, Standardize};
use crate::error::{Error, Result};
use burn::tensor::Device;

/// The largest layer width a spec or checkpoint may ask for: far above any useful model, low
/// enough that a crafted file cannot make the loader allocate without bound.
pub const MAX_WIDTH: usize = 1 << 16;

/// An architecture as a user writes it, before the data's shape is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSpec {
    /// `mlp:W1,W2,...`: a ReLU multilayer perceptron with these hidden widths.
    Mlp {
        /// Widths of the hidden layers, input side first.
        hidden: Vec<usize>,
    },
    /// `cnn:C1,C2,.../D1,...[+bn]`: 3×3 convolution blocks (each: conv, optional batch norm,
    /// 2×2 max-pool, ReLU) with these channel counts, then ReLU dense layers of these widths.
    Cnn {
        /// Output channels of each convolution block, input side first.
        channels: Vec<usize>,
        /// Widths of the dense hidden layers after the last block (may be empty).
        dense: Vec<usize>,
        /// Batch normalization after each convolution.
        batch_norm: bool,
    },
}

/// Parses a comma-separated list of layer widths, each in `1..=MAX_WIDTH`.
fn widths(list: &str, bad: &dyn Fn(&str) -> Error) -> Result<Vec<usize>> {
    list.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(0) => Err(bad("a layer width is 0")),
            Ok(n) if n > MAX_WIDTH => Err(bad("a layer width is over 65536")),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(&format!("{w:?} is not a positive integer"))),
        })
        .collect()
}

impl std::str::FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::config(format!(
                "model spec {s:?} does not parse: {why} (expected e.g. mlp:1200,1200 or \
                 cnn:32,64/256)"
            ))
        };
        if let Some(rest) = s.strip_prefix("mlp:") {
            return Ok(ModelSpec::Mlp {
                hidden: widths(rest, &bad)?,
            });
        }
        let rest = s
            .strip_prefix("cnn:")
            .ok_or_else(|| bad("it must start with \"mlp:\" or \"cnn:\""))?;
        let (rest, batch_norm) = match rest.strip_suffix("+bn") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (convs, dense) = match rest.split_once('/') {
            Some((c, d)) => (c, widths(d, &bad)?),
            None => (rest, Vec::new()),
        };
        let channels = widths(convs, &bad)?;
        if channels.len() > MAX_CONV_BLOCKS {
            return Err(bad(&format!(
                "more than {MAX_CONV_BLOCKS} convolution blocks"
            )));
        }
        Ok(ModelSpec::Cnn {
            channels,
            dense,
            batch_norm,
        })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSpec::Mlp { hidden } => write!(f, "mlp:{}", list(hidden)),
            ModelSpec::Cnn {
                channels,
                dense,
                batch_norm,
            } => {
                write!(f, "cnn:{}", list(channels))?;
                if !dense.is_empty() {
                    write!(f, "/{}", list(dense))?;
                }
                if *batch_norm {
                    write!(f, "+bn")?;
                }
                Ok(())
            }
        }
    }
}

fn list(widths: &[usize]) -> String {
    let w: Vec<String> = widths.iter().map(|h| h.to_string()).collect();
    w.join(",")
}

impl ModelSpec {
    /// Gradient clipping this kind of model trains with unless told otherwise. A CNN without
    /// batch norm can lose every channel to the first steps of distillation from a confident
    /// teacher (the soft-target term regresses logits of magnitude 10-20); a per-parameter
    /// norm cap of 5 prevents it and barely touches training on labels alone. MLPs train
    /// unclipped, as the paper's did.
    pub fn default_clip_norm(&self) -> Option<f64> {
        match self {
            ModelSpec::Mlp { .. } => None,
            ModelSpec::Cnn { .. } => Some(5.0),
        }
    }

    /// Widths of the layers whose ReLU units the silent-unit diagnostic counts, in its order
    /// (for a CNN, a unit is a channel).
    pub fn hidden_widths(&self) -> Vec<usize> {
        match self {
            ModelSpec::Mlp { hidden } => hidden.clone(),
            ModelSpec::Cnn {
                channels, dense, ..
            } => channels.iter().chain(dense).copied().collect(),
        }
    }
}

/// A full architecture: spec, input shape, classes and regularization, checked. It is what a
/// checkpoint stores (tagged by `kind`) and what builds a fresh [`Net`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// A multilayer perceptron.
    Mlp(MlpConfig),
    /// A convolutional network.
    Cnn(CnnConfig),
}

impl ModelConfig {
    /// Checks and builds an architecture for images of `shape` and `classes` classes.
    pub fn new(
        spec: &ModelSpec,
        shape: ImageShape,
        classes: usize,
        dropout: Dropout,
    ) -> Result<ModelConfig> {
        match spec {
            ModelSpec::Mlp { hidden } => Ok(ModelConfig::Mlp(MlpConfig::new(
                hidden, shape, classes, dropout,
            )?)),
            ModelSpec::Cnn {
                channels,
                dense,
                batch_norm,
            } => Ok(ModelConfig::Cnn(CnnConfig::new(
                channels,
                dense,
                *batch_norm,
                shape,
                classes,
                dropout,
            )?)),
        }
    }

    /// The same architecture carrying a table's standardization (`None`: images), so that it
    /// takes raw features. Only an MLP can take a table.
    pub fn with_standardize(self, standardize: Option<Standardize>) -> Result<ModelConfig> {
        let Some(s) = standardize else {
            return Ok(self);
        };
        let n = self.inputs();
        if s.mean.len() != n || s.scale.len() != n {
            return Err(Error::config(format!(
                "the standardization has {} means and {} scales for {n} features",
                s.mean.len(),
                s.scale.len()
            )));
        }
        if s.mean.iter().chain(&s.scale).any(|v| !v.is_finite()) {
            return Err(Error::config(
                "the standardization holds a non-finite value",
            ));
        }
        match self {
            ModelConfig::Mlp(c) => Ok(ModelConfig::Mlp(MlpConfig {
                standardize: Some(s),
                ..c
            })),
            ModelConfig::Cnn(_) => Err(Error::config(
                "a CNN needs images and this data is a table of features: use an MLP, such as \
                 mlp:128,128",
            )),
        }
    }

    /// A table's standardization, if the model carries one.
    pub fn standardize(&self) -> Option<&Standardize> {
        match self {
            ModelConfig::Mlp(c) => c.standardize.as_ref(),
            ModelConfig::Cnn(_) => None,
        }
    }

    /// Re-checks a configuration read from a file: the same checks as [`ModelConfig::new`],
    /// plus a cap on the parameter count computed with checked arithmetic, all before any
    /// tensor is allocated.
    pub fn check(self) -> Result<ModelConfig> {
        let spec = self.spec();
        let checked = ModelConfig::new(&spec, self.shape(), self.classes(), self.dropout())?
            .with_standardize(self.standardize().cloned())?;
        let hidden = spec.hidden_widths();
        if hidden.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
            return Err(Error::config(format!(
                "layer widths {hidden:?} are outside 1..={MAX_WIDTH}"
            )));
        }
        if checked.checked_params().is_none_or(|p| p > 1 << 31) {
            return Err(Error::config(
                "the architecture has more than 2^31 parameters",
            ));
        }
        Ok(checked)
    }

    /// The spec this architecture was built from.
    pub fn spec(&self) -> ModelSpec {
        match self {
            ModelConfig::Mlp(c) => ModelSpec::Mlp {
                hidden: c.hidden.clone(),
            },
            ModelConfig::Cnn(c) => ModelSpec::Cnn {
                channels: c.channels.clone(),
                dense: c.dense.clone(),
                batch_norm: c.batch_norm,
            },
        }
    }

    /// Shape of the images it takes.
    pub fn shape(&self) -> ImageShape {
        match self {
            ModelConfig::Mlp(c) => c.shape(),
            ModelConfig::Cnn(c) => c.shape,
        }
    }

    /// Values per input image.
    pub fn inputs(&self) -> usize {
        self.shape().len()
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        match self {
            ModelConfig::Mlp(c) => c.classes,
            ModelConfig::Cnn(c) => c.classes,
        }
    }

    /// Dropout while training.
    pub fn dropout(&self) -> Dropout {
        match self {
            ModelConfig::Mlp(c) => Dropout {
                input: c.input_dropout,
                hidden: c.hidden_dropout,
            },
            ModelConfig::Cnn(c) => c.dropout,
        }
    }

    /// Weights and biases in total.
    pub fn params(&self) -> usize {
        self.checked_params().unwrap_or(usize::MAX)
    }

    fn checked_params(&self) -> Option<usize> {
        match self {
            ModelConfig::Mlp(c) => c.checked_params(),
            ModelConfig::Cnn(c) => c.checked_params(),
        }
    }

    /// A freshly initialized network (seed the device first for reproducible weights).
    pub fn init(&self, device: &Device) -> Net {
        match self {
            ModelConfig::Mlp(c) => Net::Mlp(c.init(device)),
            ModelConfig::Cnn(c) => Net::Cnn(c.init(device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rejects() {
        let s: ModelSpec = "mlp:1200,1200".parse().unwrap();
        assert_eq!(s.hidden_widths(), vec![1200, 1200]);
        assert_eq!(s.to_string(), "mlp:1200,1200");
        for bad in [
            "cnn:",
            "cnn:3/",
            "cnn:3+bn/4",
            "conv:3",
            "mlp:",
            "mlp:12,x",
            "mlp:0",
            "1200,1200",
            "mlp:-3",
            "mlp:70000",
        ] {
            let e = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(e.contains("does not parse"), "{bad}: {e}");
        }
    }

    #[test]
    fn cnn_specs_parse_round_trip_and_count_parameters() {
        let s: ModelSpec = "cnn:32,64/256+bn".parse().unwrap();
        assert_eq!(s.to_string(), "cnn:32,64/256+bn");
        assert_eq!(s.hidden_widths(), vec![32, 64, 256]);
        assert_eq!("cnn:8".parse::<ModelSpec>().unwrap().to_string(), "cnn:8");
        let c = ModelConfig::new(&s, ImageShape::gray(28, 28), 10, Dropout::NONE).unwrap();
        // Conv weights and bias plus batch norm's scale and shift, then the dense head on
        // 64 channels of 7x7.
        let convs = (9 + 3) * 32 + (32 * 9 + 3) * 64;
        assert_eq!(c.params(), convs + 64 * 49 * 256 + 256 + 256 * 10 + 10);
        assert_eq!(c.clone().check().unwrap(), c);
        let three = "cnn:4,4,4".parse().unwrap();
        assert!(ModelConfig::new(&three, ImageShape::gray(4, 4), 10, Dropout::NONE).is_err());
        assert!(ModelConfig::new(&three, ImageShape::gray(8, 8), 10, Dropout::NONE).is_ok());
    }

    #[test]
    fn param_count_matches_paper_architectures() {
        let shape = ImageShape::gray(28, 28);
        let t = ModelConfig::new(
            &"mlp:1200,1200".parse().unwrap(),
            shape,
            10,
            Dropout {
                input: 0.2,
                hidden: 0.5,
            },
        )
        .unwrap();
        assert_eq!(
            t.params(),
            784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
        );
        let spec = "mlp:800,800".parse().unwrap();
        let s = ModelConfig::new(&spec, shape, 10, Dropout::NONE).unwrap();
        assert!(
            s.params() * 2 < t.params() + t.params() / 10,
            "800-800 is about half the teacher"
        );
        let full = Dropout {
            input: 1.0,
            hidden: 0.0,
        };
        assert!(ModelConfig::new(&spec, shape, 10, full).is_err());
        assert!(ModelConfig::new(&spec, shape, 1, Dropout::NONE).is_err());
    }

    #[test]
    fn configs_from_files_are_capped_before_anything_is_built() {
        let spec = "mlp:8".parse().unwrap();
        let ModelConfig::Mlp(mut c) =
            ModelConfig::new(&spec, ImageShape::gray(2, 2), 3, Dropout::NONE).unwrap()
        else {
            panic!("an mlp: spec builds an MLP")
        };
        c.hidden = vec![2_000_000_000, 2_000_000_000];
        let e = ModelConfig::Mlp(c.clone()).check().unwrap_err().to_string();
        assert!(e.contains("65536"), "{e}");
        c.hidden = vec![8];
        c.image = [1 << 20, 1 << 20];
        assert!(ModelConfig::Mlp(c).check().is_err());
    }
}
