//! Stage 2, data: reading datasets from disk, the splits a run trains, validates and tests on,
//! batching on the compute device, augmentation and transfer-set selection.
//!
//! Owns: every file format a dataset can come in (IDX, `.npz`, image folders, CSV and Parquet
//! tables; one entry point, [`load_with`]), the example shape (an image `[C, H, W]` or a feature
//! vector `[F]`, stored as `[1, 1, F]`), labels, and which examples a student may learn from.
//! May use: `compute` and the foundation modules (`error`, `fsutil`). Nothing here knows about
//! models.
//!
//! Images stay as `u8` on the host (a quarter of the memory of `f32`) and are turned into
//! `[0, 1]` floats once, when a split is uploaded to the compute device as one tensor. Batches
//! are then gathered on the device by index, so a training step copies no image data from the
//! host unless augmentation (jitter) has to change the pixels.

mod augment;
mod dataset;
mod folder;
pub mod idx;
mod munge;
mod npz;
mod split;
mod table;
mod transfer;

pub use augment::{Shift, jittered_batch, mix_batch, shifted_batch};
pub use dataset::{Dataset, DatasetInfo, ImageShape, Label, load, load_with};
pub use idx::mnist_dir;
pub use munge::Munge;
pub use split::{
    DatasetShape, DeviceSplit, Split, Splits, Values, default_validation_size, index_tensor,
};
pub use table::{Impute, Standardize, Strings, TableInfo, TableOptions, load_rows};
pub use transfer::{TransferConfig, TransferParams};
