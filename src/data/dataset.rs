//! A labelled dataset as every format delivers it, and the one entry point that finds the
//! format of a path.

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::split::Split;
use super::table::{TableInfo, TableOptions};
use crate::error::{Error, Result, Setting};

/// A class index. Wide enough for any class count a classifier can have.
pub type Label = u32;

/// The shape of one image, `[C, H, W]`: channels (1 for grayscale, 3 for RGB), height and
/// width. Pixels are stored channel-major (all of channel 0, then channel 1, ...), row-major
/// within a channel, which is what convolutional models take and MLPs flatten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// A grayscale shape of `height` x `width`.
    pub fn gray(height: usize, width: usize) -> ImageShape {
        ImageShape {
            channels: 1,
            height,
            width,
        }
    }

    /// Values per image: `C * H * W`.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// True when the shape holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of a feature vector of `width` values: one row of one channel.
    pub fn features(width: usize) -> ImageShape {
        ImageShape {
            channels: 1,
            height: 1,
            width,
        }
    }

    /// `[height, width]`, as reports and charts show an image.
    pub fn hw(&self) -> [usize; 2] {
        [self.height, self.width]
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// Training and test splits with their image shape and class count, whatever file format they
/// came from.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name (the data directory's or file's name).
    pub name: String,
    /// Shape of every image.
    pub shape: ImageShape,
    /// Number of classes: one more than the largest training label.
    pub classes: usize,
    /// Training examples (validation is split off from these).
    pub train: Split,
    /// Test examples: only ever used for final evaluation.
    pub test: Split,
    /// Names of the classes, label order, where the format has them (image folders, tables).
    pub class_names: Option<Vec<String>>,
    /// For a feature table, what its columns became; `None` for images.
    pub table: Option<TableInfo>,
}

/// Loads the dataset at `path`, whatever its format, with the default table options (see
/// [`load_with`]).
pub fn load(path: &Path) -> Result<Dataset> {
    load_with(path, &TableOptions::default())
}

/// Loads the dataset at `path`, whatever its format: a directory in the four-file IDX layout
/// of MNIST, a Keras-layout `.npz` file (images, or feature arrays `[N, F]`), an image-folder
/// root (`train/<class>/`, `test/<class>/`), or a feature table (a `.csv` or `.parquet` file,
/// or a directory with `train.csv` and `test.csv`), read as `table` says. Every format plugs
/// in here, so commands never call a reader directly.
///
/// ```
/// use distill::data::{TableOptions, load_with};
///
/// let dir = std::env::temp_dir().join(format!("distill-doc-load-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let csv = dir.join("flowers.csv");
/// std::fs::write(&csv, "length,colour,species\n5.1,white,setosa\n7.0,blue,versicolor\n\
///                       6.3,blue,virginica\n4.9,white,setosa\n")?;
/// let ds = load_with(&csv, &TableOptions::default())?;
/// // The last column is the label; its classes are numbered in sorted order.
/// assert_eq!(ds.class_names.unwrap(), ["setosa", "versicolor", "virginica"]);
/// // The text column is one-hot encoded, its mapping recorded.
/// assert_eq!(ds.table.unwrap().features, ["length", "colour=blue", "colour=white"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_with(path: &Path, table: &TableOptions) -> Result<Dataset> {
    let bad = |reason: String| Error::Dataset {
        dir: path.to_path_buf(),
        reason,
    };
    let takes = format!(
        "{} takes an IDX directory, an .npz file, an image-folder root, or a .csv or .parquet \
         table",
        Setting::Data
    );
    if !path.exists() {
        return Err(bad(format!("does not exist ({takes})")));
    }
    if super::npz::is_npz(path) {
        return super::npz::load_npz(path, table);
    }
    if super::table::is_table(path) {
        return super::table::load_table(path, table);
    }
    if path.is_file() {
        return Err(bad(format!(
            "is a file but not an .npz, .csv or .parquet; {takes}"
        )));
    }
    if super::folder::is_image_folder(path) && !super::idx::is_idx_dir(path) {
        return super::folder::load_folder(path);
    }
    super::idx::load_dir(path)
}

impl Dataset {
    /// Checks that the parts fit together: two or more classes, every image of `shape`, every
    /// test label below `classes`. Errors name `source`, the file or directory read.
    pub fn new(
        name: String,
        source: &Path,
        shape: ImageShape,
        classes: usize,
        train: Split,
        test: Split,
    ) -> Result<Dataset> {
        let bad = |reason: String| Error::Dataset {
            dir: source.to_path_buf(),
            reason,
        };
        if classes < 2 {
            return Err(bad(format!(
                "{classes} class(es); classification needs at least two"
            )));
        }
        for (what, s) in [("training", &train), ("test", &test)] {
            if s.pixels != shape.len() {
                return Err(bad(format!(
                    "{what} images have {} values each, the shape {shape} needs {}",
                    s.pixels,
                    shape.len()
                )));
            }
            if let Some((i, l)) = s
                .labels
                .iter()
                .enumerate()
                .find(|(_, l)| **l as usize >= classes)
            {
                return Err(bad(format!(
                    "{what} label {l} at position {i} is out of range: classes are 0..{}",
                    classes - 1
                )));
            }
        }
        Ok(Dataset {
            name,
            shape,
            classes,
            train,
            test,
            class_names: None,
            table: None,
        })
    }

    /// Values per image.
    pub fn pixels(&self) -> usize {
        self.shape.len()
    }

    /// Splits the training set into (train, validation) with a seeded shuffle; the validation
    /// split is what choices are made on, never the test set.
    pub fn train_validation(&self, validation: usize, seed: u64) -> Result<(Split, Split)> {
        if validation >= self.train.len() {
            return Err(Error::config(format!(
                "validation size {validation} leaves no training example (training set has {})",
                self.train.len()
            )));
        }
        let mut idx: Vec<usize> = (0..self.train.len()).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed_5911));
        let (val, train) = idx.split_at(validation);
        let mut train = train.to_vec();
        train.sort_unstable();
        let mut val = val.to_vec();
        val.sort_unstable();
        Ok((self.train.subset(&train), self.train.subset(&val)))
    }
}

/// Summary of a dataset for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// Training examples used for fitting (after the validation hold-out and any subsetting).
    pub train_size: usize,
    /// Validation examples held out of the training set.
    pub validation_size: usize,
    /// Test examples evaluated.
    pub test_size: usize,
    /// Image height and width.
    pub image: [usize; 2],
    /// Colour channels of the images (1 in reports written before channels were recorded).
    #[serde(default = "one")]
    pub channels: usize,
    /// Class names in label order, where the data names its classes (image folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Number of classes.
    pub classes: usize,
    /// For a feature table, what its columns became (no image then: `image` is `[1, F]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableInfo>,
}

fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_named() {
        let e = load(Path::new("/nonexistent/dir")).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("/nonexistent/dir"),
            "{e}"
        );
    }

    #[test]
    fn validation_split_is_disjoint_and_seeded() {
        let n = 100;
        let ds = Dataset {
            name: "t".into(),
            shape: ImageShape::gray(1, 1),
            classes: 2,
            class_names: None,
            table: None,
            train: Split::new((0..n as u8).collect(), vec![0; n], 1),
            test: Split::new(vec![], vec![], 1),
        };
        let (t, v) = ds.train_validation(10, 3).unwrap();
        assert_eq!((t.len(), v.len()), (90, 10));
        let (v, t) = (v.bytes().unwrap(), t.bytes().unwrap());
        assert!(v.iter().all(|p| !t.contains(p)));
        assert_eq!(ds.train_validation(10, 3).unwrap().1.bytes().unwrap(), v);
        assert_ne!(ds.train_validation(10, 4).unwrap().1.bytes().unwrap(), v);
        assert!(ds.train_validation(100, 3).is_err());
    }
}
