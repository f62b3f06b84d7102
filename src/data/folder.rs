//! Image-folder datasets: `ROOT/train/<class>/*.png|jpg|jpeg` and `ROOT/test/<class>/*`
//! (or `val/`, as torchvision's ImageFolder layouts name the held-out split). Class names are
//! sorted and become labels 0, 1, ...; images may be grayscale or colour, and all must have one
//! size.

use std::path::{Path, PathBuf};

use super::dataset::{Dataset, ImageShape, Label};
use super::split::Split;
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The names the test split's folder may have, in the order they are looked for. distill holds
/// its own validation split out of `train/`, so a `val/` beside it is the test set, as it is
/// for ImageNet-style layouts whose test labels are not public.
const TEST_NAMES: [&str; 4] = ["test", "val", "valid", "validation"];

/// True when `path` looks like an image-folder root (it has a `train` folder of class folders).
pub fn is_image_folder(path: &Path) -> bool {
    path.join("train").is_dir()
}

fn bad(path: &Path, reason: String) -> Error {
    Error::Dataset {
        dir: path.to_path_buf(),
        reason,
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("reading", dir, e))?
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|e| Error::io("reading", dir, e))
        })
        .collect::<Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Reads the images of one split: every class folder of `names`, in that order.
fn read_split(
    root: &Path,
    split: &str,
    names: &[String],
    grey: &mut Option<bool>,
    shape: &mut Option<(u32, u32)>,
) -> Result<(Vec<image::DynamicImage>, Vec<Label>)> {
    let dir = root.join(split);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for entry in sorted_entries(&dir)? {
        if !entry.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(label) = names.iter().position(|n| *n == name) else {
            return Err(bad(
                &entry,
                format!("class {name:?} is not among the training classes {names:?}"),
            ));
        };
        let files: Vec<PathBuf> = sorted_entries(&entry)?
            .into_iter()
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            return Err(bad(
                &entry,
                "the class folder holds no .png or .jpg image".into(),
            ));
        }
        for file in files {
            let img =
                image::open(&file).map_err(|e| bad(&file, format!("not a readable image: {e}")))?;
            let dims = (img.width(), img.height());
            if *shape.get_or_insert(dims) != dims {
                let (w, h) = shape.unwrap_or(dims);
                return Err(bad(
                    &file,
                    format!(
                        "is {}x{} but the first image is {w}x{h}: all images must have one size",
                        dims.0, dims.1
                    ),
                ));
            }
            let is_grey = !img.color().has_color();
            *grey = Some(grey.unwrap_or(true) && is_grey);
            images.push(img);
            labels.push(label as Label);
        }
    }
    Ok((images, labels))
}

/// Loads an image-folder dataset rooted at `root`. If any image is in colour every image is
/// read as RGB, else as grayscale; alpha channels are dropped.
pub fn load_folder(root: &Path) -> Result<Dataset> {
    let names: Vec<String> = sorted_entries(&root.join("train"))?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if names.len() < 2 {
        return Err(bad(
            &root.join("train"),
            format!(
                "{} class folder(s); classification needs at least two",
                names.len()
            ),
        ));
    }
    let (mut grey, mut size) = (None, None);
    // A test/ of loose, unlabelled images (as Kaggle ships them) has no class folder: skipped.
    let has_classes = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())))
    };
    let test = TEST_NAMES
        .into_iter()
        .find(|n| has_classes(&root.join(n)))
        .ok_or_else(|| {
            bad(
                root,
                "an image folder needs a test/ folder (or val/, valid/, validation/) of class \
                 folders beside train/"
                    .into(),
            )
        })?;
    let (train_imgs, train_labels) = read_split(root, "train", &names, &mut grey, &mut size)?;
    let (test_imgs, test_labels) = read_split(root, test, &names, &mut grey, &mut size)?;
    let (width, height) = size.unwrap_or((0, 0));
    let channels = if grey.unwrap_or(true) { 1 } else { 3 };
    let shape = ImageShape {
        channels,
        height: height as usize,
        width: width as usize,
    };
    let pixels = |imgs: Vec<image::DynamicImage>| -> Vec<u8> {
        let plane = shape.height * shape.width;
        let mut out = Vec::with_capacity(imgs.len() * shape.len());
        for img in imgs {
            if channels == 1 {
                out.extend_from_slice(img.to_luma8().as_raw());
            } else {
                let rgb = img.to_rgb8();
                let raw = rgb.as_raw();
                for c in 0..3 {
                    out.extend((0..plane).map(|p| raw[p * 3 + c]));
                }
            }
        }
        out
    };
    let train = Split::new(pixels(train_imgs), train_labels, shape.len());
    let test = Split::new(pixels(test_imgs), test_labels, shape.len());
    let mut ds = Dataset::new(
        root.file_name()
            .map_or("dataset".into(), |s| s.to_string_lossy().into_owned()),
        root,
        shape,
        names.len(),
        train,
        test,
    )?;
    ds.class_names = Some(names);
    Ok(ds)
}
