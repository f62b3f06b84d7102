//! What every command loads: a model directory (one network, or an ensemble whose
//! `ensemble.json` lists member models), or an ONNX file. An ensemble averages its members'
//! softened probabilities; its members may be model directories or ONNX files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::checkpoint::{Network, weights_path};
use super::onnx::{OnnxFile, OnnxModel, OnnxOptions, is_onnx};
use super::{Predictor, TreeEnsemble};
use crate::compute::PlainMlp;
use crate::data::ImageShape;
use crate::error::{Error, Result};

/// File that marks a model directory as an ensemble and lists its members.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

#[derive(Debug, Serialize, Deserialize)]
struct EnsembleManifest {
    members: Vec<PathBuf>,
    /// How the ONNX members run (absent when there are none, and in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onnx: Option<OnnxOptions>,
}

/// What opening a model path needs besides the path: for an ONNX file, the image shape it
/// must take (from the data) and how to run it. Model directories need neither.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The data's image shape; required to open an ONNX file.
    pub shape: Option<ImageShape>,
    /// Input normalization and output kind of ONNX files.
    pub onnx: OnnxOptions,
}

/// A loaded classifier: one network, an ONNX model, or an ensemble of them that averages its
/// members' softened probabilities.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per loaded model, never stored in bulk
pub enum Classifier {
    /// One network.
    Single(Network),
    /// A foreign model from an ONNX file.
    Onnx(OnnxModel),
    /// A tree ensemble (forest or boosted trees) from an ONNX-ML file.
    Trees(Arc<TreeEnsemble>),
    /// Members (networks or ONNX models) of one input size and class count.
    Ensemble(Vec<Classifier>),
}

impl Classifier {
    /// Loads a model directory: an ensemble if it holds `ensemble.json`, else one network.
    /// ONNX files need the data's shape: see [`Classifier::open`].
    pub fn load(path: &Path, device: &Device) -> Result<Classifier> {
        Classifier::open(path, device, &OpenOptions::default())
    }

    /// Opens any model path: an ONNX file (with `how.shape`, `how.onnx`), an ensemble
    /// directory, or a network's directory (or its `model.safetensors`).
    pub fn open(path: &Path, device: &Device, how: &OpenOptions) -> Result<Classifier> {
        if is_onnx(path) {
            let Some(shape) = how.shape else {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: "an ONNX model can only be opened together with data \
                             (its images tell the input shape)"
                        .into(),
                });
            };
            // Read once, for whichever runtime takes it.
            let file = OnnxFile::read(path)?;
            if file.holds_trees() {
                let trees = TreeEnsemble::from_file(&file, how.onnx.output.as_deref())?;
                if trees.features() != shape.len() {
                    return Err(Error::Mismatch(format!(
                        "{}: the tree ensemble reads {} features per row but the data has {}",
                        path.display(),
                        trees.features(),
                        shape.len()
                    )));
                }
                return Ok(Classifier::Trees(Arc::new(trees)));
            }
            return OnnxModel::from_file(file, shape, how.onnx.clone()).map(Classifier::Onnx);
        }
        let Some(m) = read_manifest(path)? else {
            return Network::load(path, device).map(Classifier::Single);
        };
        let member_how = OpenOptions {
            shape: how.shape,
            onnx: m.onnx.clone().unwrap_or_default(),
        };
        let members = m
            .members
            .iter()
            .map(|p| Classifier::open_member(&path.join(p), device, &member_how))
            .collect::<Result<Vec<_>>>()?;
        check_members(&members)?;
        Ok(Classifier::Ensemble(members))
    }

    /// Opens an ensemble member: a network or an ONNX file, never another ensemble.
    fn open_member(path: &Path, device: &Device, how: &OpenOptions) -> Result<Classifier> {
        match Classifier::open(path, device, how)? {
            Classifier::Ensemble(_) => Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: "an ensemble member is itself an ensemble; list its members instead".into(),
            }),
            c => Ok(c),
        }
    }

    /// Loads a teacher: like [`Classifier::open`], but a file is refused by name unless it is
    /// an ONNX model, since a distill teacher's soft targets are cached by its directory's
    /// weights and its metrics are read from the directory.
    pub fn load_teacher(path: &Path, device: &Device, how: &OpenOptions) -> Result<Classifier> {
        if path.is_file() && !is_onnx(path) {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: "a teacher is given as its model directory or as an .onnx file, not \
                         a file inside a model directory (pass the directory that holds \
                         model.safetensors)"
                    .into(),
            });
        }
        Classifier::open(path, device, how)
    }

    /// Refuses a teacher whose class count is not the data's `classes` (a student learns the
    /// data's classes from it).
    pub fn expect_classes(&self, classes: usize) -> Result<()> {
        if self.classes() != classes {
            return Err(Error::Mismatch(format!(
                "the teacher has {} classes but the dataset (and so the student) has {classes}",
                self.classes()
            )));
        }
        Ok(())
    }

    /// Writes an ensemble directory listing `members` (model directories or ONNX files), after
    /// checking they load and agree in input size and class count.
    pub fn create_ensemble(
        out: &Path,
        members: &[PathBuf],
        device: &Device,
        how: &OpenOptions,
    ) -> Result<Classifier> {
        let loaded = members
            .iter()
            .map(|p| Classifier::open_member(p, device, how))
            .collect::<Result<Vec<_>>>()?;
        check_members(&loaded)?;
        std::fs::create_dir_all(out).map_err(|e| Error::io("creating directory", out, e))?;
        let abs: Vec<PathBuf> = members
            .iter()
            .map(|p| std::fs::canonicalize(p).map_err(|e| Error::io("resolving", p, e)))
            .collect::<Result<_>>()?;
        let onnx = members.iter().any(|p| is_onnx(p)).then(|| how.onnx.clone());
        crate::fsutil::write_json(
            &out.join(ENSEMBLE_FILE),
            &EnsembleManifest { members: abs, onnx },
        )?;
        Ok(Classifier::Ensemble(loaded))
    }

    /// The members (the classifier itself unless it is an ensemble).
    pub fn members(&self) -> &[Classifier] {
        match self {
            Classifier::Ensemble(v) => v,
            c => std::slice::from_ref(c),
        }
    }

    /// The network, unless this is an ONNX model or an ensemble.
    pub fn network(&self) -> Option<&Network> {
        match self {
            Classifier::Single(n) => Some(n),
            _ => None,
        }
    }

    /// SHA-256 identifying what this classifier, opened from `path`, computes: a network's
    /// weights file, an ONNX model's files and options, or all of an ensemble's members.
    pub fn identity(&self, path: &Path) -> Result<String> {
        match self {
            Classifier::Single(_) => crate::fsutil::sha256_file(&weights_path(path)),
            Classifier::Onnx(m) => Ok(m.identity().to_string()),
            Classifier::Trees(m) => Ok(m.identity().to_string()),
            Classifier::Ensemble(members) => {
                let m = read_manifest(path)?.ok_or_else(|| Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("{ENSEMBLE_FILE} disappeared"),
                })?;
                let mut all = String::new();
                for (p, c) in m.members.iter().zip(members) {
                    all += &c.identity(&path.join(p))?;
                }
                Ok(crate::fsutil::sha256_hex(all.as_bytes()))
            }
        }
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

fn check_members(members: &[Classifier]) -> Result<()> {
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
        match self {
            Classifier::Single(n) => n.shape(),
            Classifier::Onnx(m) => m.shape(),
            Classifier::Trees(m) => m.shape(),
            Classifier::Ensemble(v) => v[0].shape(),
        }
    }
    fn classes(&self) -> usize {
        match self {
            Classifier::Single(n) => n.classes(),
            Classifier::Onnx(m) => m.classes(),
            Classifier::Trees(m) => m.classes(),
            Classifier::Ensemble(v) => v[0].classes(),
        }
    }
    fn params(&self) -> usize {
        match self {
            Classifier::Single(n) => n.params(),
            Classifier::Onnx(m) => m.params(),
            Classifier::Trees(m) => m.params(),
            Classifier::Ensemble(v) => v.iter().map(Predictor::params).sum(),
        }
    }
    fn describe(&self) -> String {
        match self {
            Classifier::Single(n) => n.describe(),
            Classifier::Onnx(m) => m.describe(),
            Classifier::Trees(m) => m.describe(),
            Classifier::Ensemble(v) => format!("ensemble of {} x {}", v.len(), v[0].describe()),
        }
    }
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Result<Tensor<2>> {
        self.soften(&self.raw_outputs(images)?, t)
    }
    fn logits(&self, images: &Tensor<2>) -> Result<Tensor<2>> {
        match self {
            Classifier::Single(n) => n.logits(images),
            Classifier::Onnx(m) => m.logits(images),
            Classifier::Trees(m) => m.logits(images),
            Classifier::Ensemble(_) => self.log_probs(images, 1.0),
        }
    }
    fn silent_units(&self, images: &Tensor<2>) -> Vec<usize> {
        match self {
            Classifier::Single(n) => n.silent_units(images),
            _ => Vec::new(),
        }
    }

    fn serving_path(&self) -> Option<PlainMlp> {
        match self {
            Classifier::Single(n) => n.serving_path(),
            _ => None,
        }
    }
}

/// A classifier's raw outputs for some rows: the logits of each model it runs (one for a single
/// model, each member's in order for an ensemble). Its log-probabilities at any T follow from
/// them by [`Classifier::soften`], bit for bit as [`Predictor::log_probs`] computes them, so a
/// teacher run once serves a whole grid of temperatures.
#[derive(Debug, Clone)]
pub struct RawOutputs(Vec<Tensor<2>>);

impl RawOutputs {
    /// Values held: what keeping them costs.
    pub fn len(&self) -> usize {
        self.0
            .iter()
            .map(|t| t.dims().iter().product::<usize>())
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Classifier {
    /// The raw outputs of every model this classifier runs, for `images`.
    pub fn raw_outputs(&self, images: &Tensor<2>) -> Result<RawOutputs> {
        match self {
            Classifier::Ensemble(v) => {
                let mut all = Vec::new();
                for m in v {
                    all.extend(m.raw_outputs(images)?.0);
                }
                Ok(RawOutputs(all))
            }
            _ => Ok(RawOutputs(vec![self.logits(images)?])),
        }
    }

    /// Log-probabilities at temperature `t` from raw outputs this classifier gave.
    pub fn soften(&self, raw: &RawOutputs, t: f32) -> Result<Tensor<2>> {
        let mut outputs = raw.0.iter();
        let lp = self.soften_from(&mut outputs, t)?;
        match outputs.next() {
            None => Ok(lp),
            Some(_) => Err(Error::Mismatch(
                "raw outputs of another classifier (more models than this one runs)".into(),
            )),
        }
    }

    fn soften_from<'a>(
        &self,
        outputs: &mut impl Iterator<Item = &'a Tensor<2>>,
        t: f32,
    ) -> Result<Tensor<2>> {
        let Classifier::Ensemble(v) = self else {
            let logits = outputs.next().ok_or_else(|| {
                Error::Mismatch("raw outputs of another classifier (fewer models)".into())
            })?;
            return Ok(log_softmax(logits.clone().div_scalar(t), 1));
        };
        // Average probabilities, not logits: the paper's ensemble teacher. In log space as a
        // log-sum-exp of the members' log-softmax outputs minus ln n, so that a class every
        // member all but rules out keeps a finite log-probability instead of log(0) = -inf
        // (which would turn the loss into NaN).
        let mut acc: Option<Tensor<2>> = None;
        for m in v {
            let lp = m.soften_from(outputs, t)?;
            acc = Some(match acc {
                None => lp,
                Some(a) => {
                    let top = a.clone().max_pair(lp.clone());
                    let sum = (a - top.clone()).exp() + (lp - top.clone()).exp();
                    top + sum.log()
                }
            });
        }
        let acc = acc.ok_or_else(|| Error::config("an ensemble without members"))?;
        Ok(acc.sub_scalar((v.len() as f32).ln()))
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
            Classifier::Ensemble(members.into_iter().map(Classifier::Single).collect())
                .log_probs(&image, 1.0)
                .unwrap()
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
