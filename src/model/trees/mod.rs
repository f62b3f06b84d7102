//! Tree-ensemble teachers: ONNX-ML `TreeEnsembleClassifier` models (scikit-learn forests and
//! boosted trees through skl2onnx, LightGBM and XGBoost through onnxmltools) evaluated natively.
//!
//! tract implements the operator, but walks every node of every tree through its generic
//! operator machinery, far too slowly to label a transfer set. Here the file's node arrays
//! are read once into compact slots ([`forest`]), and rows are scored in parallel blocks, each
//! tree over a whole block at a time ([`eval`]). Results follow onnxruntime's semantics,
//! including its rules for two-class models and base values, and are bit-identical whatever
//! the thread count, because each row sums its trees in file order on its own.

mod attrs;
mod eval;
mod forest;
mod graph;
mod predict;

use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use self::graph::Pipeline;
use super::onnx::OnnxFile;
use crate::error::{Error, Result};

/// Rows per parallel task at most. Each task walks every tree over all its rows, so the more
/// rows, the more often a tree's upper nodes are found in cache (`docs/speed.md` compares
/// task sizes on a large forest).
const ROWS_PER_TASK: usize = 4096;

/// Rows per task at least, where fewer rows than threads times `ROWS_PER_TASK` are scored.
const MIN_ROWS_PER_TASK: usize = 256;

/// A tree-ensemble classifier loaded from an ONNX file, ready to score feature rows.
pub struct TreeEnsemble {
    path: PathBuf,
    pipeline: Pipeline,
    identity: String,
}

impl fmt::Debug for TreeEnsemble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeEnsemble")
            .field("path", &self.path)
            .field("features", &self.features())
            .field("classes", &self.classes())
            .field("trees", &self.trees())
            .finish_non_exhaustive()
    }
}

impl TreeEnsemble {
    /// Loads the model at `path`, scoring the output that holds its probabilities: the only
    /// float tensor output, or the one named `probabilities` among several.
    pub fn load(path: &Path) -> Result<TreeEnsemble> {
        Self::load_output(path, None)
    }

    /// Loads the model at `path`, scoring the output named `output` (or, if `None`, the one
    /// [`TreeEnsemble::load`] picks). Every problem is a one-line error naming the file: not
    /// ONNX, a ZipMap output, an operator the evaluator lacks, inconsistent tree arrays.
    pub fn load_output(path: &Path, output: Option<&str>) -> Result<TreeEnsemble> {
        Self::open(path, output)?.ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "holds no TreeEnsembleClassifier node".into(),
        })
    }

    /// As [`TreeEnsemble::load_output`], but `None` when the file holds no tree ensemble (a
    /// model for tract, then).
    pub fn open(path: &Path, output: Option<&str>) -> Result<Option<TreeEnsemble>> {
        let file = OnnxFile::read(path)?;
        match file.holds_trees() {
            true => Self::from_file(&file, output).map(Some),
            false => Ok(None),
        }
    }

    /// The tree ensemble of a file already read (one that [`OnnxFile::holds_trees`]).
    pub(crate) fn from_file(file: &OnnxFile, output: Option<&str>) -> Result<TreeEnsemble> {
        let pipeline = graph::build(file.graph(), output).map_err(|reason| Error::Checkpoint {
            path: file.path.clone(),
            reason,
        })?;
        let identity = crate::fsutil::sha256_hex(
            format!(
                "{}:{}",
                crate::fsutil::sha256_hex(&file.bytes),
                pipeline.output
            )
            .as_bytes(),
        );
        Ok(TreeEnsemble {
            path: file.path.clone(),
            pipeline,
            identity,
        })
    }

    /// Decision nodes in all trees: what a tree ensemble has in place of weights.
    pub fn nodes(&self) -> usize {
        self.pipeline.forest.slots.len()
    }

    /// SHA-256 of the file and the output scored, which keys cached soft targets.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Features per row (`F`).
    pub fn features(&self) -> usize {
        self.pipeline.features
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        self.pipeline.forest.classes
    }

    /// Trees in the ensemble.
    pub fn trees(&self) -> usize {
        self.pipeline.forest.roots.len()
    }

    /// The name of the graph input the rows feed.
    pub fn input_name(&self) -> &str {
        &self.pipeline.input
    }

    /// The name of the graph output this evaluator computes.
    pub fn output_name(&self) -> &str {
        &self.pipeline.output
    }

    /// Probabilities `[n, classes]` (row-major) for `n` rows of `features()` values each, as
    /// the chosen output of the ONNX file gives them.
    pub fn probabilities(&self, rows: &[f32], n: usize) -> Result<Vec<f32>> {
        let (f, c) = (self.features(), self.classes());
        if n.checked_mul(f) != Some(rows.len()) {
            return Err(Error::Mismatch(format!(
                "{} holds {} values for {n} rows, but the model takes {f} features per row",
                self.path.display(),
                rows.len()
            )));
        }
        let len = n.checked_mul(c).ok_or_else(|| {
            Error::Mismatch(format!(
                "{n} rows of {c} probabilities do not fit in memory"
            ))
        })?;
        let mut out = vec![0f32; len];
        if n == 0 {
            return Ok(out);
        }
        let per = n
            .div_ceil(rayon::current_num_threads())
            .clamp(MIN_ROWS_PER_TASK, ROWS_PER_TASK);
        out.par_chunks_mut(per * c)
            .zip(rows.par_chunks(per * f))
            .for_each(|(out, rows)| self.block(rows, out));
        Ok(out)
    }

    /// Scores one block of rows into `out`.
    fn block(&self, rows: &[f32], out: &mut [f32]) {
        let p = &self.pipeline;
        let (f, c) = (p.features, p.forest.classes);
        let m = rows.len() / f;
        let mut scaled;
        let x = if p.pre.is_empty() {
            rows
        } else {
            scaled = rows.to_vec();
            p.pre.iter().for_each(|s| s.apply(&mut scaled, f));
            &scaled[..]
        };
        let mut sums = vec![0f32; m * c];
        let mut second = vec![false; m];
        p.forest.sum_block(x, f, &mut sums, &mut second);
        for ((s, o), &sec) in sums
            .chunks_exact_mut(c)
            .zip(out.chunks_exact_mut(c))
            .zip(&second)
        {
            p.forest.finish(s, sec, o);
        }
        p.post.iter().for_each(|s| s.apply(out, c));
    }
}
