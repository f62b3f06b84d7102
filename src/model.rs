//! Models: a multilayer perceptron built from a spec such as `mlp:1200,1200`, its checkpoint
//! format, and ensembles of such nets.
//!
//! A checkpoint is one safetensors file (`model.safetensors`) whose metadata carries the
//! architecture as JSON, so a model directory is self-describing and loading it runs no code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// File name of a model's weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
const FORMAT: &str = "distill-mlp-v1";

/// Hidden-layer widths and regularization parsed from a spec like `mlp:1200,1200`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Widths of the hidden layers, input side first.
    pub hidden: Vec<usize>,
}

impl std::str::FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::config(format!(
                "model spec {s:?} does not parse: {why} (expected e.g. mlp:1200,1200)"
            ))
        };
        let rest = s
            .strip_prefix("mlp:")
            .ok_or_else(|| bad("it must start with \"mlp:\""))?;
        let hidden = rest
            .split(',')
            .map(|w| match w.trim().parse::<usize>() {
                Ok(0) => Err(bad("a layer width is 0")),
                Ok(n) if n > 1 << 16 => Err(bad("a layer width is over 65536")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(&format!("{w:?} is not a positive integer"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelSpec { hidden })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        write!(f, "mlp:{}", w.join(","))
    }
}

/// Full architecture of an MLP: input size, hidden widths, classes and dropout rates.
/// Built only through [`MlpConfig::new`], which checks every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input features (pixels per image).
    pub inputs: usize,
    /// Hidden-layer widths.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Dropout probability on the input pixels during training.
    pub input_dropout: f64,
    /// Dropout probability on each hidden layer's output during training.
    pub hidden_dropout: f64,
    /// Image height and width, kept so tools can draw inputs.
    pub image: [usize; 2],
}

impl MlpConfig {
    /// Checks and builds a configuration.
    pub fn new(
        spec: &ModelSpec,
        image: [usize; 2],
        classes: usize,
        input_dropout: f64,
        hidden_dropout: f64,
    ) -> Result<Self> {
        for (name, p) in [
            ("input dropout", input_dropout),
            ("hidden dropout", hidden_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::config(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        if classes < 2 {
            return Err(Error::config(format!(
                "a classifier needs at least 2 classes, got {classes}"
            )));
        }
        if image[0] == 0 || image[1] == 0 {
            return Err(Error::config("image size must be non-zero"));
        }
        Ok(MlpConfig {
            inputs: image[0] * image[1],
            hidden: spec.hidden.clone(),
            classes,
            input_dropout,
            hidden_dropout,
            image,
        })
    }

    /// The spec string (`mlp:...`) of this architecture.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            hidden: self.hidden.clone(),
        }
    }

    /// Layer sizes from input to output.
    fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.inputs];
        s.extend(&self.hidden);
        s.push(self.classes);
        s
    }

    /// Number of weights and biases.
    pub fn params(&self) -> usize {
        self.sizes().windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Creates a freshly initialized network on `device` (seed the device first for
    /// reproducible weights).
    pub fn init(&self, device: &Device) -> Mlp {
        let layers = self
            .sizes()
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Mlp {
            layers,
            input_dropout: DropoutConfig::new(self.input_dropout).init(),
            hidden_dropout: DropoutConfig::new(self.hidden_dropout).init(),
        }
    }
}

/// A ReLU multilayer perceptron producing class logits.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    input_dropout: Dropout,
    hidden_dropout: Dropout,
}

impl Mlp {
    /// Logits `[batch, classes]` for flattened images `[batch, inputs]`. Dropout is active only
    /// on an autodiff device in training mode.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = self.input_dropout.forward(x);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.hidden_dropout.forward(relu(x));
            }
        }
        x
    }

    /// For each hidden layer, how many ReLU units output zero on every one of `images`.
    /// Such units pass no gradient and so never recover: they are capacity lost, typically to
    /// a few oversized early steps.
    pub fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        let hidden = &self.layers[..self.layers.len() - 1];
        let mut peak: Vec<Vec<f32>> = hidden
            .iter()
            .map(|l| vec![f32::NEG_INFINITY; l.weight.dims()[1]])
            .collect();
        let [n, _] = images.dims();
        for s in (0..n).step_by(CHUNK) {
            let mut x = images.clone().slice(s..(s + CHUNK).min(n));
            for (layer, peak) in hidden.iter().zip(&mut peak) {
                x = relu(layer.forward(x));
                let batch_max: Vec<f32> = x
                    .clone()
                    .max_dim(0)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                for (p, m) in peak.iter_mut().zip(batch_max) {
                    *p = p.max(m);
                }
            }
        }
        peak.iter()
            .map(|p| p.iter().filter(|&&m| m <= 0.0).count())
            .collect()
    }

    /// Logits for many images, computed in chunks of `chunk` rows to bound memory.
    pub fn logits_chunked(&self, images: &Tensor<2>, chunk: usize) -> Tensor<2> {
        let [n, _] = images.dims();
        if n <= chunk {
            return self.forward(images.clone());
        }
        let parts: Vec<Tensor<2>> = (0..n)
            .step_by(chunk.max(1))
            .map(|s| self.forward(images.clone().slice(s..(s + chunk).min(n))))
            .collect();
        Tensor::cat(parts, 0)
    }
}

/// A trained network with its architecture: what a model directory holds.
#[derive(Debug, Clone)]
pub struct Network {
    /// Architecture.
    pub config: MlpConfig,
    /// Weights.
    pub mlp: Mlp,
}

/// Where a model's weights live: a directory holding `model.safetensors`, or the file itself.
pub fn weights_path(path: &Path) -> PathBuf {
    if path.is_dir() || path.extension().is_none() {
        path.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    }
}

impl Network {
    /// Adds `delta` to the output bias of each class in `classes` (bias adjustment for
    /// classes a student never saw in its transfer set).
    pub fn shift_bias(&mut self, classes: &[usize], delta: f32) {
        let Some(last) = self.mlp.layers.last_mut() else {
            return;
        };
        let Some(bias) = last.bias.take() else { return };
        let b = bias.val();
        let device = b.device();
        let mut v: Vec<f32> = b.into_data().try_to_vec().unwrap_or_default();
        for &c in classes {
            if let Some(x) = v.get_mut(c) {
                *x += delta;
            }
        }
        let n = v.len();
        last.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(v, [n]),
            &device,
        )));
    }

    /// Serializes weights and architecture to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (i, layer) in self.mlp.layers.iter().enumerate() {
            let w = layer.weight.val();
            tensors.push((
                format!("layers.{i}.weight"),
                w.dims().to_vec(),
                f32_bytes(w.into_data())?,
            ));
            if let Some(b) = &layer.bias {
                let b = b.val();
                tensors.push((
                    format!("layers.{i}.bias"),
                    b.dims().to_vec(),
                    f32_bytes(b.into_data())?,
                ));
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Format {
                        what: "model tensors".into(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_>>()?;
        let config = serde_json::to_string(&self.config).map_err(|e| Error::Format {
            what: "model config".into(),
            reason: e.to_string(),
        })?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config".to_string(), config),
        ]);
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Format {
            what: "safetensors".into(),
            reason: e.to_string(),
        })
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

    /// Parses safetensors bytes written by [`Network::to_bytes`].
    pub fn from_bytes(bytes: &[u8], device: &Device) -> std::result::Result<Network, String> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file ({e})"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(format!(
                "not a distill model (metadata format is not {FORMAT})"
            ));
        }
        let config: MlpConfig =
            serde_json::from_str(meta.get("config").ok_or("metadata has no config")?)
                .map_err(|e| format!("architecture metadata does not parse: {e}"))?;
        let spec = config.spec();
        let config = MlpConfig::new(
            &spec,
            config.image,
            config.classes,
            config.input_dropout,
            config.hidden_dropout,
        )
        .map_err(|e| e.to_string())?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| format!("corrupt safetensors: {e}"))?;
        let sizes = config.sizes();
        let read = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
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
        let mut mlp = config.init(device);
        for (i, w) in sizes.windows(2).enumerate() {
            let weight = read(&format!("layers.{i}.weight"), &[w[0], w[1]])?;
            let bias = read(&format!("layers.{i}.bias"), &[w[1]])?;
            mlp.layers[i].weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [w[0], w[1]]),
                device,
            ));
            mlp.layers[i].bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(bias, [w[1]]),
                device,
            )));
        }
        Ok(Network { config, mlp })
    }
}

/// What every classifier offers the rest of the library: logits for a batch of images and a
/// description of its shape. Implemented by single networks and by ensembles.
pub trait Predictor {
    /// Input features expected.
    fn inputs(&self) -> usize;
    /// Output classes.
    fn classes(&self) -> usize;
    /// Image height and width.
    fn image(&self) -> [usize; 2];
    /// Weights and biases in total.
    fn params(&self) -> usize;
    /// Human-readable architecture.
    fn describe(&self) -> String;
    /// Log-probabilities at temperature `t` for `[n, inputs]` images (chunked internally).
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Tensor<2>;
    /// Logits at T = 1 (for an ensemble: log of the averaged probabilities).
    fn logits(&self, images: &Tensor<2>) -> Tensor<2>;
    /// ReLU units per hidden layer that never fire on `images` (see [`Mlp::silent_units`]);
    /// empty for an ensemble.
    fn silent_units(&self, _images: &Tensor<2>) -> Vec<usize> {
        Vec::new()
    }
}

const CHUNK: usize = 2048;

impl Predictor for Network {
    fn inputs(&self) -> usize {
        self.config.inputs
    }
    fn classes(&self) -> usize {
        self.config.classes
    }
    fn image(&self) -> [usize; 2] {
        self.config.image
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
        self.mlp.logits_chunked(images, CHUNK)
    }
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        self.mlp.silent_units(images)
    }
}

/// File that marks a model directory as an ensemble and lists its members.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

#[derive(Debug, Serialize, Deserialize)]
struct EnsembleManifest {
    members: Vec<PathBuf>,
}

/// A trained model directory: one network, or an ensemble that averages its members'
/// softened probabilities.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per loaded model, never stored in bulk
pub enum Classifier {
    /// One network.
    Single(Network),
    /// Members of one input size and class count.
    Ensemble(Vec<Network>),
}

impl Classifier {
    /// Loads a model directory: an ensemble if it holds `ensemble.json`, else one network.
    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        let Some(m) = read_manifest(path)? else {
            return Network::load(path, device).map(Classifier::Single);
        };
        let members = m
            .members
            .iter()
            .map(|p| Network::load(&path.join(p), device))
            .collect::<Result<Vec<_>>>()?;
        check_members(&members)?;
        Ok(Classifier::Ensemble(members))
    }

    /// Writes an ensemble directory listing `members` (model directories), after checking they
    /// load and agree in input size and class count.
    pub fn create_ensemble(out: &Path, members: &[PathBuf], device: &Device) -> Result<Classifier> {
        let nets = members
            .iter()
            .map(|p| Network::load(p, device))
            .collect::<Result<Vec<_>>>()?;
        check_members(&nets)?;
        std::fs::create_dir_all(out).map_err(|e| Error::io("creating directory", out, e))?;
        let abs: Vec<PathBuf> = members
            .iter()
            .map(|p| std::fs::canonicalize(p).map_err(|e| Error::io("resolving", p, e)))
            .collect::<Result<_>>()?;
        crate::fsutil::write_json(&out.join(ENSEMBLE_FILE), &EnsembleManifest { members: abs })?;
        Ok(Classifier::Ensemble(nets))
    }

    /// The member networks (one for a single network).
    pub fn members(&self) -> &[Network] {
        match self {
            Classifier::Single(n) => std::slice::from_ref(n),
            Classifier::Ensemble(v) => v,
        }
    }

    /// SHA-256 identifying the weights of `dir` (for an ensemble, of all its members).
    pub fn weights_hash(dir: &Path) -> Result<String> {
        let Some(m) = read_manifest(dir)? else {
            return crate::fsutil::sha256_file(&weights_path(dir));
        };
        let mut all = String::new();
        for p in &m.members {
            all += &crate::fsutil::sha256_file(&weights_path(&dir.join(p)))?;
        }
        Ok(crate::fsutil::sha256_hex(all.as_bytes()))
    }
}

/// The ensemble manifest of a model directory, or `None` for a single network.
fn read_manifest(dir: &Path) -> Result<Option<EnsembleManifest>> {
    let manifest = dir.join(ENSEMBLE_FILE);
    if !manifest.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| Error::io("reading", &manifest, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Checkpoint {
            path: manifest.clone(),
            reason: format!("ensemble manifest does not parse: {e}"),
        })
}

fn check_members(members: &[Network]) -> Result<()> {
    let Some(first) = members.first() else {
        return Err(Error::config("an ensemble needs at least one member"));
    };
    for (i, m) in members.iter().enumerate().skip(1) {
        if m.config.classes != first.config.classes || m.config.inputs != first.config.inputs {
            return Err(Error::Mismatch(format!(
                "ensemble member {} has {} inputs and {} classes but member 1 has {} and {}",
                i + 1,
                m.config.inputs,
                m.config.classes,
                first.config.inputs,
                first.config.classes
            )));
        }
    }
    Ok(())
}

impl Predictor for Classifier {
    fn inputs(&self) -> usize {
        self.members()[0].inputs()
    }
    fn classes(&self) -> usize {
        self.members()[0].classes()
    }
    fn image(&self) -> [usize; 2] {
        self.members()[0].image()
    }
    fn params(&self) -> usize {
        self.members().iter().map(Predictor::params).sum()
    }
    fn describe(&self) -> String {
        match self {
            Classifier::Single(n) => n.describe(),
            Classifier::Ensemble(v) => format!("ensemble of {} x {}", v.len(), v[0].describe()),
        }
    }
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Tensor<2> {
        match self {
            Classifier::Single(n) => n.log_probs(images, t),
            Classifier::Ensemble(v) => {
                // Average probabilities, not logits: the paper's ensemble teacher.
                let mut sum: Option<Tensor<2>> = None;
                for m in v {
                    let p = softmax(m.logits(images).div_scalar(t), 1);
                    sum = Some(match sum {
                        Some(s) => s + p,
                        None => p,
                    });
                }
                sum.expect("at least one member")
                    .div_scalar(v.len() as f32)
                    .log()
            }
        }
    }
    fn logits(&self, images: &Tensor<2>) -> Tensor<2> {
        match self {
            Classifier::Single(n) => n.logits(images),
            Classifier::Ensemble(_) => self.log_probs(images, 1.0),
        }
    }
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        match self {
            Classifier::Single(n) => n.silent_units(images),
            Classifier::Ensemble(_) => Vec::new(),
        }
    }
}

fn f32_bytes(data: TensorData) -> Result<Vec<u8>> {
    let v: Vec<f32> = data.try_to_vec().map_err(|e| Error::Format {
        what: "tensor data".into(),
        reason: format!("{e:?}"),
    })?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rejects() {
        let s: ModelSpec = "mlp:1200,1200".parse().unwrap();
        assert_eq!(s.hidden, vec![1200, 1200]);
        assert_eq!(s.to_string(), "mlp:1200,1200");
        for bad in ["cnn:3", "mlp:", "mlp:12,x", "mlp:0", "1200,1200", "mlp:-3"] {
            let e = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(e.contains("does not parse"), "{bad}: {e}");
        }
    }

    #[test]
    fn param_count_matches_paper_architectures() {
        let t = MlpConfig::new(&"mlp:1200,1200".parse().unwrap(), [28, 28], 10, 0.2, 0.5).unwrap();
        assert_eq!(
            t.params(),
            784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
        );
        let s = MlpConfig::new(&"mlp:800,800".parse().unwrap(), [28, 28], 10, 0.0, 0.0).unwrap();
        assert!(
            s.params() * 2 < t.params() + t.params() / 10,
            "800-800 is about half the teacher"
        );
        assert!(MlpConfig::new(&s.spec(), [28, 28], 10, 1.0, 0.0).is_err());
        assert!(MlpConfig::new(&s.spec(), [28, 28], 1, 0.0, 0.0).is_err());
    }

    #[test]
    fn silent_units_are_those_that_never_fire_on_any_image() {
        let device = Device::flex();
        let cfg = MlpConfig::new(&"mlp:6,4".parse().unwrap(), [2, 2], 3, 0.0, 0.0).unwrap();
        let mut mlp = cfg.init(&device);
        let set = |mlp: &mut Mlp, i: usize, w: Vec<f32>, shape: [usize; 2], b: Vec<f32>| {
            mlp.layers[i].weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), &device));
            mlp.layers[i].bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(b, [shape[1]]),
                &device,
            )));
        };
        // Layer 1: only unit 4 reads an input (pixel 0); the rest fire iff their bias is > 0.
        let mut w = vec![0.0f32; 4 * 6];
        w[4] = 1.0;
        set(&mut mlp, 0, w, [4, 6], vec![1.0, -1.0, 1.0, -1.0, 0.0, 2.0]);
        set(
            &mut mlp,
            1,
            vec![0.0; 6 * 4],
            [6, 4],
            vec![-1.0, 1.0, 1.0, 1.0],
        );
        // More images than one chunk; pixel 0 lights up only in an image of the second chunk.
        let n = CHUNK + 1000;
        let mut pixels = vec![0.0f32; n * 4];
        let images =
            |p: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(p.clone(), [n, 4]), &device);
        assert_eq!(mlp.silent_units(&images(&pixels)), vec![3, 1]);
        pixels[(CHUNK + 500) * 4] = 1.0;
        assert_eq!(mlp.silent_units(&images(&pixels)), vec![2, 1]);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_corruption() {
        let device = Device::flex();
        let cfg = MlpConfig::new(&"mlp:5".parse().unwrap(), [2, 2], 3, 0.0, 0.0).unwrap();
        let net = Network {
            mlp: cfg.init(&device),
            config: cfg.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        net.save(dir.path()).unwrap();
        let back = Network::load(dir.path(), &device).unwrap();
        assert_eq!(back.config, cfg);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.1f32, 0.2, 0.3, 0.4], [1, 4]),
            &device,
        );
        let a: Vec<f32> = net.mlp.forward(x.clone()).into_data().try_to_vec().unwrap();
        let b: Vec<f32> = back.mlp.forward(x).into_data().try_to_vec().unwrap();
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
}
