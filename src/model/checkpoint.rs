//! A trained network with its architecture, and its checkpoint: one safetensors file
//! (`model.safetensors`) whose metadata carries the architecture as JSON, so a model directory
//! is self-describing and loading it runs no code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};

use super::Predictor;
use super::mlp::MlpConfig;
use super::net::Net;
use super::spec::ModelConfig;
use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::fsutil::{canonical_safetensors, write_atomic};

/// File name of a model's weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Checkpoint format: the architecture in metadata as a `kind`-tagged [`ModelConfig`].
const FORMAT: &str = "distill-model-v2";
/// The first format: MLPs only, metadata config an untagged `MlpConfig`. Still read.
const FORMAT_MLP_V1: &str = "distill-mlp-v1";

/// A trained network with its architecture: what a model directory holds.
#[derive(Debug, Clone)]
pub struct Network {
    /// Architecture.
    pub config: ModelConfig,
    /// Weights.
    pub net: Net,
}

/// Where a model's weights live: a directory holding `model.safetensors`, or the file itself.
pub fn weights_path(path: &Path) -> PathBuf {
    if path.is_dir() || path.extension().is_none() {
        path.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    }
}

fn format_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Format {
        what: what.into(),
        reason: e.to_string(),
    }
}

impl Network {
    /// A freshly initialized network of `config` (seed the device first for reproducible
    /// weights).
    pub fn init(config: ModelConfig, device: &Device) -> Network {
        Network {
            net: config.init(device),
            config,
        }
    }

    /// Adds `delta` to the output bias of each class in `classes` (bias adjustment for
    /// classes a student never saw in its transfer set).
    pub fn shift_bias(&mut self, classes: &[usize], delta: f32) {
        self.net.shift_output_bias(classes, delta);
    }

    /// Serializes weights and architecture to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .net
            .export()
            .into_iter()
            .map(|a| {
                let bytes = a.values.iter().flat_map(|x| x.to_le_bytes()).collect();
                (a.name, a.shape, bytes)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| format_error("model tensors", e))
            })
            .collect::<Result<_>>()?;
        let config =
            serde_json::to_string(&self.config).map_err(|e| format_error("model config", e))?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config".to_string(), config),
        ]);
        safetensors::serialize(views, Some(meta))
            .map(canonical_safetensors)
            .map_err(|e| format_error("safetensors", e))
    }

    /// Writes the model to `dir/model.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(WEIGHTS_FILE);
        write_atomic(&path, &self.to_bytes()?)?;
        Ok(path)
    }

    /// Loads a model from a model directory (or its `model.safetensors`) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Network> {
        let file = weights_path(path);
        if !file.exists() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("no model here: {} does not exist", file.display()),
            });
        }
        let bytes = std::fs::read(&file).map_err(|e| Error::io("reading", &file, e))?;
        Self::from_bytes(&bytes, device).map_err(|reason| Error::Checkpoint { path: file, reason })
    }

    /// Parses safetensors bytes written by [`Network::to_bytes`] (or by the first, MLP-only
    /// format). The architecture is checked, caps included, before any tensor is built.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Network, String> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file ({e})"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let config_json = meta.get("config").ok_or("metadata has no config")?;
        let parse_error =
            |e: serde_json::Error| format!("architecture metadata does not parse: {e}");
        let config = match meta.get("format").map(String::as_str) {
            Some(FORMAT) => {
                serde_json::from_str::<ModelConfig>(config_json).map_err(parse_error)?
            }
            Some(FORMAT_MLP_V1) => ModelConfig::Mlp(
                serde_json::from_str::<MlpConfig>(config_json).map_err(parse_error)?,
            ),
            _ => {
                return Err(format!(
                    "not a distill model (metadata format is not {FORMAT} or {FORMAT_MLP_V1})"
                ));
            }
        };
        let config = config.check().map_err(|e| e.to_string())?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| format!("corrupt safetensors: {e}"))?;
        let mut read = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
            let t = st
                .tensor(name)
                .map_err(|_| format!("tensor {name} is missing"))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(format!(
                    "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor {name} holds NaN or infinite values"));
            }
            Ok(v)
        };
        let mut net = config.init(device);
        net.import(&mut read, device)?;
        Ok(Network { config, net })
    }
}

impl Predictor for Network {
    fn shape(&self) -> ImageShape {
        self.config.shape()
    }
    fn classes(&self) -> usize {
        self.config.classes()
    }
    fn params(&self) -> usize {
        self.config.params()
    }
    fn describe(&self) -> String {
        self.config.spec().to_string()
    }
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Tensor<2> {
        log_softmax(self.logits(images).div_scalar(t), 1)
    }
    fn logits(&self, images: &Tensor<2>) -> Tensor<2> {
        self.net.logits_chunked(images)
    }
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        self.net.silent_units(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dropout;
    use burn::tensor::TensorData;

    fn tiny(device: &Device) -> Network {
        let spec = "mlp:5".parse().unwrap();
        let cfg = ModelConfig::new(&spec, ImageShape::gray(2, 2), 3, Dropout::NONE).unwrap();
        Network::init(cfg, device)
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_corruption() {
        let device = Device::flex();
        let net = tiny(&device);
        let dir = tempfile::tempdir().unwrap();
        net.save(dir.path()).unwrap();
        let back = Network::load(dir.path(), &device).unwrap();
        assert_eq!(back.config, net.config);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.1f32, 0.2, 0.3, 0.4], [1, 4]),
            &device,
        );
        let a: Vec<f32> = net.net.forward(x.clone()).into_data().try_to_vec().unwrap();
        let b: Vec<f32> = back.net.forward(x).into_data().try_to_vec().unwrap();
        assert_eq!(a, b);

        let path = dir.path().join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let e = Network::load(dir.path(), &device).unwrap_err().to_string();
        assert!(e.contains("checkpoint"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(Network::load(dir.path(), &device).is_err());
        let e = Network::load(&dir.path().join("nope"), &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn first_format_checkpoints_still_load() {
        let device = Device::flex();
        let net = tiny(&device);
        let ModelConfig::Mlp(mlp) = &net.config;
        // The first format stored the MLP config untagged and had no channel count.
        let mut v1 = serde_json::to_value(mlp).unwrap();
        v1.as_object_mut().unwrap().remove("channels");
        let arrays = net.net.export();
        let bytes: Vec<Vec<u8>> = arrays
            .iter()
            .map(|a| a.values.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views = arrays.iter().zip(&bytes).map(|(a, b)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, a.shape.clone(), b);
            (a.name.clone(), v.unwrap())
        });
        let meta = HashMap::from([
            ("format".to_string(), FORMAT_MLP_V1.to_string()),
            ("config".to_string(), v1.to_string()),
        ]);
        let file = safetensors::serialize(views, Some(meta)).unwrap();
        let back = Network::from_bytes(&file, &device).unwrap();
        assert_eq!(back.config, net.config);
    }

    #[test]
    fn crafted_architectures_are_refused_before_allocation() {
        let device = Device::flex();
        let net = tiny(&device);
        let ModelConfig::Mlp(mut c) = net.config.clone();
        c.hidden = vec![2_000_000_000, 2_000_000_000];
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            (
                "config".to_string(),
                serde_json::to_string(&ModelConfig::Mlp(c)).unwrap(),
            ),
        ]);
        let file = safetensors::serialize(
            Vec::<(String, safetensors::tensor::TensorView<'_>)>::new(),
            Some(meta),
        )
        .unwrap();
        let e = Network::from_bytes(&file, &device).unwrap_err();
        assert!(e.contains("65536"), "{e}");
    }
}
