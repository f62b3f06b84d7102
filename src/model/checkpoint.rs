//! A trained network with its architecture, and its checkpoint: one safetensors file
//! (`model.safetensors`) whose metadata carries the architecture as JSON, so a model directory
//! is self-describing and loading it runs no code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};

use super::architecture::NamedArray;
use super::mlp::MlpConfig;
use super::net::Net;
use super::spec::ModelConfig;
use super::{Predictor, plain_mlp};
use crate::compute::PlainMlp;
use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::fsutil::{canonical_safetensors, f32_le, write_atomic};

/// File name of a model's weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Checkpoint format: the architecture in metadata as a `kind`-tagged [`ModelConfig`].
const FORMAT: &str = "distill-model-v2";
/// The first format: MLPs only, metadata config an untagged `MlpConfig`. Still read.
const FORMAT_MLP_V1: &str = "distill-mlp-v1";

/// Written last into a model directory whose training finished, with the SHA-256 of the
/// weights it vouches for. A directory without it (a run killed mid-way, or over an older
/// directory) is refused by everything that reads a finished model.
pub const COMPLETE_FILE: &str = "complete.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Complete {
    weights_sha256: String,
    /// Identity of the training run that produced the weights, when a run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

/// Marks the model in `dir` as finished: records the SHA-256 of its current weights and, when
/// a training run made them, that run's identity.
pub fn mark_complete(dir: &Path, run: Option<&str>) -> Result<()> {
    let weights_sha256 = crate::fsutil::sha256_file(&dir.join(WEIGHTS_FILE))?;
    let run = run.map(str::to_string);
    crate::fsutil::write_json(
        &dir.join(COMPLETE_FILE),
        &Complete {
            weights_sha256,
            run,
        },
    )
}

/// The identity of the run that finished the model in `dir`, if its marker vouches for the
/// weights there now.
pub fn finished_run(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(COMPLETE_FILE)).ok()?;
    let c: Complete = serde_json::from_str(&text).ok()?;
    let sha = crate::fsutil::sha256_file(&dir.join(WEIGHTS_FILE)).ok()?;
    (c.weights_sha256 == sha).then_some(c.run).flatten()
}

/// Copies the finished model in `from` (weights, `config.toml` and `metrics.jsonl` where
/// present) into `to`, the completion marker last, as training writes it: a copy cut short
/// reads as unfinished.
pub fn copy_model(from: &Path, to: &Path) -> Result<()> {
    clear_complete(to)?;
    for name in ["config.toml", WEIGHTS_FILE, "metrics.jsonl", COMPLETE_FILE] {
        let src = from.join(name);
        if name != WEIGHTS_FILE && name != COMPLETE_FILE && !src.exists() {
            // An older file of that name would describe other weights.
            let stale = to.join(name);
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing", &stale, e));
                }
                _ => continue,
            }
        }
        let bytes = std::fs::read(&src).map_err(|e| Error::io("reading", &src, e))?;
        write_atomic(&to.join(name), &bytes)?;
    }
    Ok(())
}

/// Removes the completion marker of `dir` (training is about to rewrite its weights).
pub fn clear_complete(dir: &Path) -> Result<()> {
    let p = dir.join(COMPLETE_FILE);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", &p, e)),
        _ => Ok(()),
    }
}

/// Checks that the weights in `file` are those a finished run vouched for, else says why the
/// directory looks interrupted.
fn check_complete(file: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let marker = dir.join(COMPLETE_FILE);
    let text = std::fs::read_to_string(&marker).map_err(|_| {
        format!(
            "{} has no {COMPLETE_FILE}: its training looks interrupted (or an older distill \
             wrote it); train it again",
            dir.display()
        )
    })?;
    let c: Complete = serde_json::from_str(&text)
        .map_err(|e| format!("{} does not parse ({e})", marker.display()))?;
    if c.weights_sha256 != crate::fsutil::sha256_hex(bytes) {
        return Err(format!(
            "the weights differ from those {} vouches for: they changed after training \
             finished (an interrupted run over this directory?); train it again",
            marker.display()
        ));
    }
    Ok(())
}

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
        let config =
            serde_json::to_string(&self.config).map_err(|e| format_error("model config", e))?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config".to_string(), config),
        ]);
        f32_safetensors(&self.net.export(), meta).map_err(|e| format_error("safetensors", e))
    }

    /// Writes the model to `dir/model.safetensors` atomically (unfinished: see
    /// [`Network::save_complete`]).
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(WEIGHTS_FILE);
        write_atomic(&path, &self.to_bytes()?)?;
        Ok(path)
    }

    /// Writes the model and marks it finished.
    pub fn save_complete(&self, dir: &Path) -> Result<PathBuf> {
        let path = self.save(dir)?;
        mark_complete(dir, None)?;
        Ok(path)
    }

    /// Loads a finished model from a model directory (or its `model.safetensors`) onto
    /// `device`; a directory whose training did not finish is refused.
    pub fn load(path: &Path, device: &Device) -> Result<Network> {
        let file = weights_path(path);
        if !file.exists() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("no model here: {} does not exist", file.display()),
            });
        }
        let bytes = std::fs::read(&file).map_err(|e| Error::io("reading", &file, e))?;
        check_complete(&file, &bytes)
            .and_then(|()| Self::from_bytes(&bytes, device))
            .map_err(|reason| Error::Checkpoint { path: file, reason })
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
            let v = f32_le(t.data());
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

/// Safetensors bytes of float32 `arrays` with `meta`, header keys in a fixed order so that
/// equal contents give equal bytes.
pub(super) fn f32_safetensors(
    arrays: &[NamedArray],
    meta: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = arrays
        .iter()
        .map(|a| a.values.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = arrays
        .iter()
        .zip(&bytes)
        .map(|(a, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, a.shape.clone(), b)
                .map(|v| (a.name.clone(), v))
                .map_err(|e| format!("tensor {}: {e}", a.name))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(meta))
        .map(canonical_safetensors)
        .map_err(|e| e.to_string())
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
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Result<Tensor<2>> {
        Ok(log_softmax(
            self.net.logits_chunked(images).div_scalar(t),
            1,
        ))
    }
    fn logits(&self, images: &Tensor<2>) -> Result<Tensor<2>> {
        Ok(self.net.logits_chunked(images))
    }
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        self.net.silent_units(images)
    }

    fn serving_path(&self) -> Option<PlainMlp> {
        plain_mlp(self, None)
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
        // Weights without the completion marker: an interrupted run.
        let e = Network::load(dir.path(), &device).unwrap_err().to_string();
        assert!(
            e.contains("looks interrupted") && e.contains(COMPLETE_FILE),
            "{e}"
        );
        net.save_complete(dir.path()).unwrap();
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
        assert!(
            e.contains("model") && e.contains("changed after training"),
            "{e}"
        );
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        mark_complete(dir.path(), None).unwrap();
        let e = Network::load(dir.path(), &device).unwrap_err().to_string();
        assert!(e.starts_with("model "), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        mark_complete(dir.path(), None).unwrap();
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
        let ModelConfig::Mlp(mlp) = &net.config else {
            panic!("tiny() is an MLP")
        };
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
        let ModelConfig::Mlp(mut c) = net.config.clone() else {
            panic!("tiny() is an MLP")
        };
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
