//! Splits: labelled images on the host, the same uploaded to the compute device, and the
//! train / validation / test triple that every run works on.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::dataset::{DatasetInfo, ImageShape, Label};
use super::table::{Standardize, TableInfo, TableOptions};
use crate::error::{Error, Result, Setting};

/// The example values of a split, as the file gave them: image bytes (0-255) or feature
/// floats. Images stay bytes on the host, a quarter of the memory of `f32`; features are never
/// quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Pixels, one byte each; models see them divided by 255.
    Bytes(Vec<u8>),
    /// Features of a table, as read.
    Floats(Vec<f32>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Bytes(v) => v.len(),
            Values::Floats(v) => v.len(),
        }
    }

    fn gather(&self, rows: &[usize], width: usize) -> Values {
        fn pick<T: Copy>(v: &[T], rows: &[usize], width: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(rows.len() * width);
            for &i in rows {
                out.extend_from_slice(&v[i * width..(i + 1) * width]);
            }
            out
        }
        match self {
            Values::Bytes(v) => Values::Bytes(pick(v, rows, width)),
            Values::Floats(v) => Values::Floats(pick(v, rows, width)),
        }
    }
}

/// Labelled examples held on the host: images or rows of a feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len * pixels` values, one example after another (images channel-major, then
    /// row-major).
    pub values: Values,
    /// One class index per example.
    pub labels: Vec<Label>,
    /// Values per example (`C * H * W` for images, `F` for features).
    pub pixels: usize,
}

impl Split {
    /// A split of images from its parts (`images.len()` must be `labels.len() * pixels`).
    pub fn new(images: Vec<u8>, labels: Vec<Label>, pixels: usize) -> Split {
        debug_assert_eq!(images.len(), labels.len() * pixels);
        Split {
            values: Values::Bytes(images),
            labels,
            pixels,
        }
    }

    /// A split of feature rows (`features.len()` must be `labels.len() * width`).
    pub fn features(features: Vec<f32>, labels: Vec<Label>, width: usize) -> Split {
        debug_assert_eq!(features.len(), labels.len() * width);
        Split {
            values: Values::Floats(features),
            labels,
            pixels: width,
        }
    }

    /// The pixels as bytes, or `None` for a feature table.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.values {
            Values::Bytes(v) => Some(v),
            Values::Floats(_) => None,
        }
    }

    /// The pixels as bytes; empty for a feature table.
    pub fn images(&self) -> &[u8] {
        self.bytes().unwrap_or_default()
    }

    /// The features, or `None` for images.
    pub fn feature_values(&self) -> Option<&[f32]> {
        match &self.values {
            Values::Floats(v) => Some(v),
            Values::Bytes(_) => None,
        }
    }

    /// Mean over examples of the squared L2 norm of what a first layer sees: pixels scaled to
    /// [0, 1] (MNIST's training set: 87.8), or for a table its standardized features (one per
    /// feature). It sizes a first layer's gradient steps.
    pub fn mean_squared_norm(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        match &self.values {
            Values::Bytes(v) => {
                let sum: u64 = v.iter().map(|&v| u64::from(v) * u64::from(v)).sum();
                sum as f64 / (255.0 * 255.0) / self.len() as f64
            }
            Values::Floats(_) => self.pixels as f64,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Split {
        Split {
            values: self.values.gather(indices, self.pixels),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            pixels: self.pixels,
        }
    }

    /// The first `n` examples (all of them if `n` is larger).
    pub fn head(&self, n: usize) -> Split {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Examples per class, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if (l as usize) < classes {
                counts[l as usize] += 1;
            }
        }
        counts
    }

    /// SHA-256 of values and labels: identifies the exact data for caches. Labels below 256
    /// hash as single bytes, so fingerprints of 8-bit-labelled data (and the caches keyed by
    /// them) are the same as before labels were widened.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(4 * self.values.len() + self.labels.len() + 8);
        bytes.extend_from_slice(&(self.pixels as u64).to_le_bytes());
        match &self.values {
            Values::Bytes(v) => bytes.extend_from_slice(v),
            Values::Floats(v) => {
                bytes.extend_from_slice(b"f32");
                bytes.extend(v.iter().flat_map(|f| f.to_le_bytes()));
            }
        }
        if self.labels.iter().all(|&l| l < 256) {
            bytes.extend(self.labels.iter().map(|&l| l as u8));
        } else {
            bytes.extend(self.labels.iter().flat_map(|l| l.to_le_bytes()));
        }
        crate::fsutil::sha256_hex(&bytes)
    }

    /// The examples as models take them: one float in `[0, 1]` per pixel byte, or the
    /// features as they are, example after example.
    pub fn floats(&self) -> Vec<f32> {
        match &self.values {
            Values::Bytes(v) => v.iter().map(|&p| p as f32 / 255.0).collect(),
            Values::Floats(v) => v.clone(),
        }
    }

    /// Uploads the split to `device`: images as `[len, pixels]` floats in `[0, 1]`, labels as ints.
    pub fn to_device(&self, device: &Device) -> DeviceSplit {
        let floats = self.floats();
        let images =
            Tensor::<2>::from_data(TensorData::new(floats, [self.len(), self.pixels]), device);
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [self.len()]), device);
        DeviceSplit {
            images,
            labels,
            len: self.len(),
        }
    }
}

/// A split uploaded to the compute device, batched by index.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `[len, pixels]` floats in `[0, 1]`.
    pub images: Tensor<2>,
    /// `[len]` class indices.
    pub labels: Tensor<1, Int>,
    /// Number of examples.
    pub len: usize,
}

impl DeviceSplit {
    /// The images at `indices` as a `[indices.len(), pixels]` tensor.
    pub fn images_at(&self, indices: &Tensor<1, Int>) -> Tensor<2> {
        self.images.clone().select(0, indices.clone())
    }

    /// The labels at `indices`.
    pub fn labels_at(&self, indices: &Tensor<1, Int>) -> Tensor<1, Int> {
        self.labels.clone().select(0, indices.clone())
    }
}

/// An index tensor for a batch of example positions.
pub fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [indices.len()]), device)
}

/// Name, image shape and class count of a loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetShape {
    /// Dataset name.
    pub name: String,
    /// Shape of every image.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
    /// Class names in label order, where the data has them.
    pub class_names: Option<Vec<String>>,
    /// For a feature table, what its columns became.
    pub table: Option<TableInfo>,
    /// For a feature table, the standardization fitted on the training split, which models
    /// trained on it carry.
    pub standardize: Option<Standardize>,
}

impl DatasetShape {
    /// True for a feature table, false for images.
    pub fn is_table(&self) -> bool {
        self.table.is_some()
    }
}

/// Examples held out for validation when none is asked for: a tenth of the training set, at
/// most 5,000 (MNIST's customary hold-out), so that small datasets keep nine tenths to train on.
pub fn default_validation_size(train_examples: usize) -> usize {
    (train_examples / 10).min(5000)
}

/// Training, validation and test splits as a run uses them.
#[derive(Debug, Clone)]
pub struct Splits {
    /// What the dataset is.
    pub dataset: DatasetShape,
    /// Examples trained on.
    pub train: Split,
    /// Held-out validation examples.
    pub validation: Split,
    /// Test examples.
    pub test: Split,
}

impl Splits {
    /// Loads `path` (any format [`super::load_with`] reads, tables as `table` says) and cuts
    /// it to the requested sizes (see [`Splits::from_dataset`]).
    pub fn load(
        path: &Path,
        table: &TableOptions,
        validation: Option<usize>,
        train_size: Option<usize>,
        test_size: Option<usize>,
    ) -> Result<Splits> {
        Self::from_dataset(
            super::load_with(path, table)?,
            validation,
            train_size,
            test_size,
        )
    }

    /// Cuts `dataset` to the requested sizes. `validation` examples are held out of the
    /// training set (`None`: [`default_validation_size`]), drawn with a fixed seed so that
    /// every model of every run sees the same ones.
    pub fn from_dataset(
        dataset: super::Dataset,
        validation: Option<usize>,
        train_size: Option<usize>,
        test_size: Option<usize>,
    ) -> Result<Splits> {
        if train_size == Some(0) || test_size == Some(0) {
            return Err(Error::config(format!(
                "{} and {} must be at least 1",
                Setting::TrainSize,
                Setting::TestSize
            )));
        }
        let validation = validation.unwrap_or_else(|| default_validation_size(dataset.train.len()));
        let (train, validation) = dataset.train_validation(validation, 0)?;
        let train = train_size.map_or(train.clone(), |n| train.head(n));
        let test = test_size.map_or(dataset.test.clone(), |n| dataset.test.head(n));
        let standardize = train
            .feature_values()
            .map(|x| Standardize::fit(x, train.pixels));
        Ok(Splits {
            dataset: DatasetShape {
                name: dataset.name,
                shape: dataset.shape,
                classes: dataset.classes,
                class_names: dataset.class_names,
                table: dataset.table,
                standardize,
            },
            train,
            validation,
            test,
        })
    }

    /// Summary for reports.
    pub fn info(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.dataset.name.clone(),
            train_size: self.train.len(),
            validation_size: self.validation.len(),
            test_size: self.test.len(),
            image: self.dataset.shape.hw(),
            channels: self.dataset.shape.channels,
            classes: self.dataset.classes,
            class_names: self.dataset.class_names.clone(),
            table: self.dataset.table.clone(),
        }
    }

    /// Images the silent-unit diagnostic runs on: the training images (the first 5,000), since
    /// a unit that never fires on what it trains on gets no gradient and is lost for good. A
    /// small validation split would not do: on 143 images, a unit that fires on one image in
    /// 200 looks silent.
    pub fn probe_images(&self, device: &Device) -> Tensor<2> {
        self.train.head(5000).to_device(device).images
    }

    /// The same splits with the training set replaced by `train` (a transfer set).
    pub fn with_train(&self, train: Split) -> Splits {
        Splits {
            dataset: self.dataset.clone(),
            train,
            validation: self.validation.clone(),
            test: self.test.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnostic_probes_training_images_held_out_or_not() {
        let split = |n: usize| Split::new(vec![0; n * 4], vec![0; n], 4);
        let splits = Splits {
            dataset: DatasetShape {
                name: "t".into(),
                shape: ImageShape::gray(2, 2),
                classes: 2,
                class_names: None,
                table: None,
                standardize: None,
            },
            train: split(7000),
            validation: split(0),
            test: split(3),
        };
        let device = Device::flex();
        assert_eq!(splits.probe_images(&device).dims(), [5000, 4]);
        let held_out = Splits {
            validation: split(30),
            ..splits
        };
        assert_eq!(held_out.probe_images(&device).dims(), [5000, 4]);
        let small = Splits {
            train: split(1200),
            ..held_out
        };
        assert_eq!(small.probe_images(&device).dims(), [1200, 4]);
    }

    #[test]
    fn fingerprints_of_byte_labels_are_unchanged_by_wider_labels() {
        let s = Split::new(vec![1, 2, 3, 4], vec![0, 9], 2);
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend([1, 2, 3, 4, 0, 9]);
        assert_eq!(s.fingerprint(), crate::fsutil::sha256_hex(&bytes));
        let wide = Split::new(vec![1, 2, 3, 4], vec![0, 300], 2);
        assert_ne!(wide.fingerprint(), s.fingerprint());
    }
}
