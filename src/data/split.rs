//! Splits: labelled images on the host, the same uploaded to the compute device, and the
//! train / validation / test triple that every run works on.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::dataset::{DatasetInfo, ImageShape, Label};
use crate::error::{Error, Result};

/// Labelled images held on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len * pixels` bytes, one image after another (channel-major, then row-major).
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<Label>,
    /// Values per image (`C * H * W`).
    pub pixels: usize,
}

impl Split {
    /// A split from its parts (`images.len()` must be `labels.len() * pixels`).
    pub fn new(images: Vec<u8>, labels: Vec<Label>, pixels: usize) -> Split {
        debug_assert_eq!(images.len(), labels.len() * pixels);
        Split {
            images,
            labels,
            pixels,
        }
    }

    /// Mean over images of the squared L2 norm of their pixels scaled to [0, 1]: how much
    /// input a first layer sees (MNIST's training set: 87.8), which sizes its gradient steps.
    pub fn mean_squared_norm(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let sum: u64 = self
            .images
            .iter()
            .map(|&v| u64::from(v) * u64::from(v))
            .sum();
        sum as f64 / (255.0 * 255.0) / self.len() as f64
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
        let mut images = Vec::with_capacity(indices.len() * self.pixels);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.images[i * self.pixels..(i + 1) * self.pixels]);
            labels.push(self.labels[i]);
        }
        Split {
            images,
            labels,
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

    /// SHA-256 of images and labels: identifies the exact data for caches. Labels below 256
    /// hash as single bytes, so fingerprints of 8-bit-labelled data (and the caches keyed by
    /// them) are the same as before labels were widened.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.images.len() + self.labels.len() + 8);
        bytes.extend_from_slice(&(self.pixels as u64).to_le_bytes());
        bytes.extend_from_slice(&self.images);
        if self.labels.iter().all(|&l| l < 256) {
            bytes.extend(self.labels.iter().map(|&l| l as u8));
        } else {
            bytes.extend(self.labels.iter().flat_map(|l| l.to_le_bytes()));
        }
        crate::fsutil::sha256_hex(&bytes)
    }

    /// The images as models take them: one float in `[0, 1]` per byte, image after image.
    pub fn floats(&self) -> Vec<f32> {
        self.images.iter().map(|&p| p as f32 / 255.0).collect()
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
    /// Loads `path` (any format [`super::load`] reads) and cuts it to the requested sizes
    /// (see [`Splits::from_dataset`]).
    pub fn load(
        path: &Path,
        validation: Option<usize>,
        train_size: Option<usize>,
        test_size: Option<usize>,
    ) -> Result<Splits> {
        Self::from_dataset(super::load(path)?, validation, train_size, test_size)
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
            return Err(Error::config(
                "--train-size and --test-size must be at least 1",
            ));
        }
        let validation = validation.unwrap_or_else(|| default_validation_size(dataset.train.len()));
        let (train, validation) = dataset.train_validation(validation, 0)?;
        let train = train_size.map_or(train.clone(), |n| train.head(n));
        let test = test_size.map_or(dataset.test.clone(), |n| dataset.test.head(n));
        Ok(Splits {
            dataset: DatasetShape {
                name: dataset.name,
                shape: dataset.shape,
                classes: dataset.classes,
                class_names: dataset.class_names,
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
