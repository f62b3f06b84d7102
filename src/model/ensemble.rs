//! Ensembles: a model directory holding `ensemble.json` lists member model directories, and
//! the ensemble averages its members' softened probabilities. [`Classifier`] is what every
//! command loads: one network or an ensemble.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::Predictor;
use super::checkpoint::{Network, weights_path};
use crate::data::ImageShape;
use crate::error::{Error, Result};

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

    /// Loads a teacher: like [`Classifier::load`], but only from a model directory, since a
    /// teacher's soft targets are cached by its directory's weights and its metrics are read
    /// from the directory. A file is refused by name.
    pub fn load_teacher(path: &Path, device: &Device) -> Result<Classifier> {
        if path.is_file() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: "a teacher is given as its model directory, not a file inside it \
                         (pass the directory that holds model.safetensors)"
                    .into(),
            });
        }
        Classifier::load(path, device)
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
        if m.classes() != first.classes() || m.shape() != first.shape() {
            return Err(Error::Mismatch(format!(
                "ensemble member {} takes {} images and has {} classes but member 1 takes {} and has {}",
                i + 1,
                m.shape(),
                m.classes(),
                first.shape(),
                first.classes()
            )));
        }
    }
    Ok(())
}

impl Predictor for Classifier {
    fn shape(&self) -> ImageShape {
        self.members()[0].shape()
    }
    fn classes(&self) -> usize {
        self.members()[0].classes()
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
                // Average probabilities, not logits: the paper's ensemble teacher. In log space
                // as a log-sum-exp of the members' log-softmax outputs minus ln n, so that a
                // class every member all but rules out keeps a finite log-probability instead
                // of log(0) = -inf (which would turn the loss into NaN).
                let mut acc: Option<Tensor<2>> = None;
                for m in v {
                    let lp = m.log_probs(images, t);
                    acc = Some(match acc {
                        None => lp,
                        Some(a) => {
                            let top = a.clone().max_pair(lp.clone());
                            let sum = (a - top.clone()).exp() + (lp - top.clone()).exp();
                            top + sum.log()
                        }
                    });
                }
                acc.expect("at least one member")
                    .sub_scalar((v.len() as f32).ln())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dropout, ModelConfig};
    use burn::tensor::TensorData;

    /// A network whose logits are `1000 * pixels[perm[c]]` for class `c`: a one-hidden-layer
    /// MLP with a scaled permutation as its first weights and the identity after the ReLU.
    fn confident(perm: [usize; 3], device: &Device) -> Network {
        let spec = "mlp:3".parse().unwrap();
        let cfg = ModelConfig::new(&spec, ImageShape::gray(1, 3), 3, Dropout::NONE).unwrap();
        let mut net = Network::init(cfg, device);
        let mut source = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
            let mut w = vec![0.0f32; shape.iter().product()];
            match name {
                "layers.0.weight" => perm
                    .iter()
                    .enumerate()
                    .for_each(|(c, &i)| w[i * 3 + c] = 1000.0),
                "layers.1.weight" => (0..3).for_each(|i| w[i * 3 + i] = 1.0),
                _ => {}
            }
            Ok(w)
        };
        net.net.import(&mut source, device).unwrap();
        net
    }

    #[test]
    fn ensembles_with_logit_gaps_of_1000_keep_finite_log_probabilities() {
        let device = Device::flex();
        let image =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0], [1, 3]), &device);
        let log_probs = |members: Vec<Network>| -> Vec<f32> {
            Classifier::Ensemble(members)
                .log_probs(&image, 1.0)
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        // Two members sure of class 0 (gaps of 1,000): the others get about -1000, not -inf.
        let agree = log_probs(vec![
            confident([0, 1, 2], &device),
            confident([0, 1, 2], &device),
        ]);
        assert!(agree.iter().all(|v| v.is_finite()), "{agree:?}");
        assert!(
            agree[0].abs() < 1e-3 && (agree[1] + 1000.0).abs() < 1.0,
            "{agree:?}"
        );
        // Members sure of different classes (0 and 1): the average is 1/2 on each, and the
        // class neither believes stays finite.
        let split = log_probs(vec![
            confident([0, 1, 2], &device),
            confident([1, 0, 2], &device),
        ]);
        assert!(split.iter().all(|v| v.is_finite()), "{split:?}");
        assert!((split[0] - 0.5f32.ln()).abs() < 1e-4, "{split:?}");
        assert!((split[1] - 0.5f32.ln()).abs() < 1e-4, "{split:?}");
    }
}
