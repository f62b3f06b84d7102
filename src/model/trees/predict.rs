//! A tree ensemble as a classifier like any other: the logarithms of its probabilities serve as
//! logits, so temperature and distillation treat it as they treat a network.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

use super::TreeEnsemble;
use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::model::Predictor;

impl TreeEnsemble {
    /// `ln p` for each probability of `rows`, a zero counting as the smallest positive float
    /// so that it stays finite (a forest's votes are often exactly 0).
    fn host_logits(&self, rows: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut p = self.probabilities(rows, n)?;
        if let Some(i) = p.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "the tree ensemble {} gave {} for row {}",
                self.path().display(),
                p[i],
                i / self.classes().max(1)
            )));
        }
        p.iter_mut()
            .for_each(|v| *v = v.max(f32::MIN_POSITIVE).ln());
        Ok(p)
    }
}

impl Predictor for TreeEnsemble {
    fn shape(&self) -> ImageShape {
        ImageShape::features(self.features())
    }
    fn classes(&self) -> usize {
        TreeEnsemble::classes(self)
    }
    /// Decision nodes, a tree ensemble's counterpart of weights.
    fn params(&self) -> usize {
        self.nodes()
    }
    fn describe(&self) -> String {
        let name = self
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        format!("onnx:{name} ({} trees)", self.trees())
    }
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Result<Tensor<2>> {
        Ok(log_softmax(self.logits(images)?.div_scalar(t), 1))
    }
    fn logits(&self, images: &Tensor<2>) -> Result<Tensor<2>> {
        let [n, _] = images.dims();
        let rows: Vec<f32> = images
            .clone()
            .into_data()
            .try_to_vec()
            .map_err(|e| Error::Mismatch(format!("rows for the tree ensemble: {e:?}")))?;
        let v = self.host_logits(&rows, n)?;
        Ok(Tensor::from_data(
            TensorData::new(v, [n, self.classes()]),
            &images.device(),
        ))
    }
}
