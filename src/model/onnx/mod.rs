//! Foreign teachers: an ONNX file exported by another framework, run on the CPU with tract.
//!
//! The contract: the model takes pixels scaled to [0, 1] as float32, float16 or float64
//! (optionally normalized per channel by [`InputNorm`] before it sees them), or 0 to 255 as
//! uint8, laid out as its input's declared sizes say (`[N, C·H·W]`, `[N, H, W]`,
//! `[N, C, H, W]` or `[N, H, W, C]`, see [`graph`]), and returns `[N, classes]` logits or
//! probabilities ([`TeacherOutputs`]). The plan is built once, with a
//! symbolic batch dimension, and run over fixed-size chunks so that memory stays flat whatever
//! the data size.

mod file;
mod graph;
#[cfg(feature = "ort")]
mod runtime;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, InferenceModelExt, IntoRunnable, TDim, TypedFact, TypedRunnableModel,
    TypedSimplePlan, tvec,
};

pub(crate) use self::file::OnnxFile;
use self::file::{check_file, check_options};
use self::graph::{Layout, ends_in_sigmoid, prepare, signature};
use super::Predictor;
use crate::data::ImageShape;
use crate::error::{Error, Result, Setting};
use crate::fsutil::sha256_hex;

/// Images per call of the plan: large enough to amortize per-call overhead, small enough that
/// the chunk's activations of a big teacher stay small.
const ROWS_PER_RUN: usize = 256;

/// How far above 1 a probability may round (a softmax in float32 can give 1.0000001).
const PROB_SLACK: f32 = 1e-4;

/// The largest batch size a file may fix (chunks are padded to it, so it bounds memory).
const MAX_FIXED_BATCH: usize = 4096;

/// What an ONNX model's scores output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherOutputs {
    /// Decided when the model loads: probabilities if its outputs for a batch of blank images
    /// are rows in [0, 1] that sum to 1 (a softmax, as Keras and scikit-learn exports end),
    /// logits otherwise.
    #[default]
    Auto,
    /// Unnormalized class scores (the usual PyTorch export of a classifier).
    Logits,
    /// Class probabilities (a model that ends in a softmax); their logarithms serve as logits.
    Probs,
}

impl FromStr for TeacherOutputs {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(TeacherOutputs::Auto),
            "logits" => Ok(TeacherOutputs::Logits),
            "probs" => Ok(TeacherOutputs::Probs),
            _ => Err(Error::setting(
                Setting::TeacherOutputs,
                format!("must be auto, logits or probs, got {s:?}"),
            )),
        }
    }
}

/// Per-channel normalization `(x - mean) / std`, applied to [0, 1] pixels before an ONNX model
/// that expects normalized input outside its graph sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputNorm {
    /// One mean per channel, or one for all channels.
    pub mean: Vec<f32>,
    /// One standard deviation per channel, or one for all channels; each > 0.
    pub std: Vec<f32>,
}

impl FromStr for InputNorm {
    type Err = Error;
    /// Parses `MEAN,STD` (every channel alike) or `M1,..,Mc,S1,..,Sc` (c means, then c stds).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::setting(
                Setting::InputNorm,
                format!(
                    "{s:?}: {why}; give MEAN,STD or the channels' means then their standard \
                     deviations, e.g. 0.485,0.456,0.406,0.229,0.224,0.225"
                ),
            )
        };
        let v: Vec<f32> = s
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("not a list of numbers"))?;
        if v.len() < 2 || !v.len().is_multiple_of(2) {
            return Err(bad("needs an even number of values"));
        }
        let (mean, std) = v.split_at(v.len() / 2);
        if v.iter().any(|x| !x.is_finite()) || std.iter().any(|&x| x <= 0.0) {
            return Err(bad("values must be finite and standard deviations > 0"));
        }
        Ok(InputNorm {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }
}

/// How to run an ONNX model: the normalization its input expects and what its output holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OnnxOptions {
    /// Normalization applied to pixels before the model sees them; `None` feeds [0, 1] pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_norm: Option<InputNorm>,
    /// What the model's output holds.
    #[serde(default)]
    pub outputs: TeacherOutputs,
    /// The graph output that holds the class scores, by name; `None`: found by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// True when `path` names an ONNX file (by its extension), which loads as an [`OnnxModel`]
/// rather than as a model directory.
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// An ONNX classifier, parsed, checked against the data's image shape and compiled once.
#[derive(Clone)]
pub struct OnnxModel {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    layout: Layout,
    /// The input's element type; pixels are cast to it (to 0 to 255 for `U8`).
    input_type: DatumType,
    shape: ImageShape,
    classes: usize,
    /// The batch size the model's input fixes, if it fixes one (chunks are padded to it).
    fixed_batch: Option<usize>,
    /// The options it runs with, `outputs` decided (never `Auto`).
    options: OnnxOptions,
    identity: String,
    params: usize,
    /// A binary classifier with one output, class 1's score, widened to two classes.
    one_output: bool,
    /// The onnxruntime session that runs the model instead of tract, when asked for.
    #[cfg(feature = "ort")]
    ort: Option<runtime::OrtSession>,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Parses and compiles the ONNX file at `path` for images of `shape`. Every problem is a
    /// one-line error naming the file: not ONNX or truncated, an operator tract lacks, a
    /// missing external-data file, an input that does not fit the data, an unusable output.
    pub fn load(path: &Path, shape: ImageShape, options: OnnxOptions) -> Result<OnnxModel> {
        Self::from_file(OnnxFile::read(path)?, shape, options)
    }

    /// [`OnnxModel::load`] for a file already read.
    pub(crate) fn from_file(
        file: OnnxFile,
        shape: ImageShape,
        options: OnnxOptions,
    ) -> Result<OnnxModel> {
        let path = file.path.as_path();
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let graph = file.graph();
        let onnx = tract_onnx::onnx();
        let identity = check_file(path, graph, &onnx, &file.bytes)?;
        let sig = signature(path, graph, shape, options.output.as_deref())?;
        check_options(path, &sig, &options, shape)?;
        let params = graph
            .initializer
            .iter()
            .map(|t| t.dims.iter().product::<i64>().max(0) as usize)
            .sum();
        let sigmoid = ends_in_sigmoid(graph, sig.output);
        let want = sig.layout.dims(shape);
        let output_name = graph.output[sig.output].name.clone();
        let mut proto = file.proto;
        prepare(&mut proto, sig.output);
        let dir = path.parent().unwrap_or(Path::new(""));
        let input = (sig.input_type, want.as_slice());
        let build = |batch| guarded(|| compile(&onnx, &proto, dir, batch, input));
        // Some exports compute shapes in ways tract cannot follow with a symbolic batch (tf2onnx
        // casts the batch size to int32 before a Reshape); those run at a fixed batch, padded.
        let (plan, fixed_batch) = match (build(sig.fixed_batch), sig.fixed_batch) {
            (Ok(plan), batch) => (plan, batch),
            (Err(e), Some(_)) => return Err(bad(format!("tract cannot run it: {e:#}"))),
            (Err(e), None) => match build(Some(ROWS_PER_RUN)) {
                Ok(plan) => (plan, Some(ROWS_PER_RUN)),
                Err(_) => return Err(bad(format!("tract cannot run it: {e:#}"))),
            },
        };
        let mut model = OnnxModel {
            path: path.to_path_buf(),
            plan,
            layout: sig.layout,
            input_type: sig.input_type,
            shape,
            classes: 0,
            fixed_batch,
            options,
            identity: String::new(),
            params,
            one_output: false,
            #[cfg(feature = "ort")]
            ort: None,
        };
        onnxruntime_instead(&mut model, &output_name)?;
        model.probe(sigmoid)?;
        // The decided options, so that a cache made with `logits` or `probs` spelled out
        // before `auto` existed keeps its identity.
        model.identity = sha256_hex(
            format!(
                "{identity}{}|{}",
                model.runtime_tag(),
                serde_json::to_string(&model.options).unwrap_or_default()
            )
            .as_bytes(),
        );
        Ok(model)
    }

    /// One chunk of blank images tells the number of classes, proves the plan runs, and tells
    /// probabilities from logits (`sigmoid`: the one output comes out of a Sigmoid).
    fn probe(&mut self, sigmoid: bool) -> Result<()> {
        let rows = self.fixed_batch.unwrap_or(1);
        let probe = self.run_chunk(&vec![0.0; rows * self.shape.len()], rows)?;
        self.classes = probe.len() / rows;
        if self.classes == 1 {
            // A binary classifier with one output (PyTorch's BCEWithLogits, Keras's sigmoid
            // Dense): class 1's logit, or its probability when a Sigmoid gives it.
            self.one_output = true;
            self.classes = 2;
            if self.options.outputs == TeacherOutputs::Auto {
                self.options.outputs = match sigmoid {
                    true => TeacherOutputs::Probs,
                    false => TeacherOutputs::Logits,
                };
            }
        }
        if self.classes < 2 {
            return Err(Error::Checkpoint {
                path: self.path.clone(),
                reason: "its output has no classes; a classifier gives [N, classes]".into(),
            });
        }
        if self.options.outputs == TeacherOutputs::Auto {
            self.options.outputs = if are_probabilities(&probe, self.classes) {
                TeacherOutputs::Probs
            } else {
                TeacherOutputs::Logits
            };
        }
        Ok(())
    }

    /// What the identity adds for the runtime: nothing for tract, whose identities are those
    /// of every cache made before onnxruntime could run a model.
    fn runtime_tag(&self) -> &'static str {
        #[cfg(feature = "ort")]
        if self.ort.is_some() {
            return "onnxruntime";
        }
        ""
    }

    /// What the model's output holds, as given or as decided when it loaded.
    pub fn outputs(&self) -> TeacherOutputs {
        self.options.outputs
    }

    /// Identifies the model for the soft-target cache: the SHA-256 of the file, of its
    /// external-data files, and of the options it runs with.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The file this model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the plan on `rows` images (host pixels in [0, 1]), padding to a fixed batch when
    /// the model has one; returns `rows * classes` row-major outputs as the model gives them.
    fn run_chunk(&self, pixels: &[f32], rows: usize) -> Result<Vec<f32>> {
        let bad = |reason: String| Error::Checkpoint {
            path: self.path.clone(),
            reason,
        };
        let batch = self.fixed_batch.unwrap_or(rows);
        let mut x = Vec::with_capacity(batch * self.shape.len());
        x.extend_from_slice(pixels);
        if let Some(n) = &self.options.input_norm {
            let plane = self.shape.height * self.shape.width;
            for (i, v) in x.iter_mut().enumerate() {
                let c = if n.mean.len() == 1 {
                    0
                } else {
                    (i / plane) % self.shape.channels
                };
                *v = (*v - n.mean[c]) / n.std[c];
            }
        }
        x.resize(batch * self.shape.len(), 0.0);
        let dims: Vec<usize> = std::iter::once(batch)
            .chain(self.layout.dims(self.shape))
            .collect();
        if self.input_type == DatumType::U8 {
            // The pixels were bytes divided by 255: this gives the bytes back exactly.
            x.iter_mut().for_each(|v| *v = (*v * 255.0).round());
        }
        #[cfg(feature = "ort")]
        if let Some(session) = &self.ort {
            let x = self.layout.arrange(self.shape, &x).into_owned();
            let out = runtime::run(session, &dims, x, &self.path)?;
            return Ok(out[..out.len() / batch * rows].to_vec());
        }
        let input =
            tract_onnx::prelude::Tensor::from_shape(&dims, &self.layout.arrange(self.shape, &x))
                .and_then(|t| Ok(t.cast_to_dt(self.input_type)?.into_owned()))
                .map_err(|e| bad(format!("building its input: {e}")))?;
        let out = guarded(|| self.plan.run(tvec![input.into()]))
            .map_err(|e| bad(format!("running it: {e:#}")))?;
        let out = out[0]
            .cast_to::<f32>()
            .map_err(|e| bad(format!("its output is not numeric: {e}")))?;
        let shape = out.shape();
        // [N] is a binary classifier's one score per image.
        if !matches!(shape.len(), 1 | 2) || shape[0] != batch {
            return Err(bad(format!(
                "its output has shape {shape:?} for a batch of {batch}; a teacher gives \
                 [N, classes]"
            )));
        }
        let width = shape.get(1).copied().unwrap_or(1);
        let view = out
            .to_plain_array_view::<f32>()
            .map_err(|e| bad(format!("reading its output: {e}")))?;
        Ok(view.iter().take(rows * width).copied().collect())
    }

    /// Logits on the host for `[n, C·H·W]` images, in parallel over chunks; the order of the
    /// chunks, and so every value, does not depend on the thread count.
    fn host_logits(&self, images: &Tensor<2>) -> Result<Vec<f32>> {
        let [n, _] = images.dims();
        let step = self.fixed_batch.unwrap_or(ROWS_PER_RUN);
        let starts: Vec<usize> = (0..n).step_by(step).collect();
        let parts: Vec<Vec<f32>> = starts
            .par_iter()
            .map(|&s| {
                let e = (s + step).min(n);
                let pixels: Vec<f32> = images
                    .clone()
                    .slice(s..e)
                    .into_data()
                    .try_to_vec()
                    .map_err(|e| Error::NonFinite(format!("images: {e:?}")))?;
                self.run_chunk(&pixels, e - s)
            })
            .collect::<Result<_>>()?;
        let mut out: Vec<f32> = parts.concat();
        if self.one_output {
            // Class 0 is the complement: logit 0 against z gives sigmoid(z) for class 1.
            let probs = self.options.outputs == TeacherOutputs::Probs;
            out = out
                .iter()
                .flat_map(|&v| if probs { [1.0 - v, v] } else { [0.0, v] })
                .collect();
        }
        let path = self.path.display();
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "the ONNX model {path} gave {} for image {} (output not finite)",
                out[i],
                i / self.classes.max(1)
            )));
        }
        if self.options.outputs == TeacherOutputs::Probs {
            if let Some(v) = out.iter().find(|v| !(0.0..=1.0 + PROB_SLACK).contains(*v)) {
                return Err(Error::Checkpoint {
                    path: self.path.clone(),
                    reason: format!(
                        "its outputs are read as probabilities, but it gave {v}, which is not \
                         a probability ({} logits if the model gives logits)",
                        Setting::TeacherOutputs
                    ),
                });
            }
            // The smallest positive float keeps a probability of exactly 0 finite in log space.
            out.iter_mut()
                .for_each(|p| *p = p.max(f32::MIN_POSITIVE).ln());
        }
        Ok(out)
    }
}

/// Swaps tract for onnxruntime where `DISTILL_ONNX_RUNTIME=onnxruntime` asks for it (float32
/// inputs only, reading graph output `output`); the model's identity then says so.
fn onnxruntime_instead(model: &mut OnnxModel, output: &str) -> Result<()> {
    let wanted = match std::env::var("DISTILL_ONNX_RUNTIME").as_deref() {
        Err(_) | Ok("tract") => false,
        Ok("onnxruntime") => true,
        Ok(_) => {
            return Err(Error::config(
                "DISTILL_ONNX_RUNTIME takes tract (the default) or onnxruntime",
            ));
        }
    };
    #[cfg(feature = "ort")]
    if wanted && model.input_type == DatumType::F32 {
        model.ort = Some(runtime::session(&model.path, output)?);
    }
    #[cfg(not(feature = "ort"))]
    if wanted {
        let _ = output;
        return Err(Error::config(format!(
            "{}: DISTILL_ONNX_RUNTIME=onnxruntime needs distill built with the cargo feature `ort`",
            model.path.display()
        )));
    }
    Ok(())
}

/// True when every row of `outputs` (`classes` wide) holds probabilities: each in [0, 1], the
/// row summing to 1 within float rounding. Logits almost never pass by chance.
fn are_probabilities(outputs: &[f32], classes: usize) -> bool {
    outputs.chunks(classes).all(|row| {
        row.iter().all(|p| (0.0..=1.0 + PROB_SLACK).contains(p))
            && (row.iter().map(|&p| f64::from(p)).sum::<f64>() - 1.0).abs() < 1e-3
    })
}

/// Runs a tract call, turning a panic inside tract (a bug there, on a file it does not
/// expect) into an error, so that a strange model file never takes the process down.
fn guarded<T>(
    f: impl FnOnce() -> tract_onnx::prelude::TractResult<T>,
) -> tract_onnx::prelude::TractResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(anyhow::anyhow!("tract failed on it ({why})"))
    })
}

/// Compiles the graph for inputs `[batch, want..]`, the batch symbolic unless the file fixes it.
fn compile(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    dir: &Path,
    fixed_batch: Option<usize>,
    (input_type, want): (DatumType, &[usize]),
) -> tract_onnx::prelude::TractResult<Arc<TypedSimplePlan>> {
    let parsed = onnx.parse(proto, dir.to_str())?;
    if !parsed.unresolved_inputs.is_empty() {
        anyhow::bail!("unresolved inputs {:?}", parsed.unresolved_inputs);
    }
    let model = parsed.model;
    let batch: TDim = match fixed_batch {
        Some(b) => b.into(),
        None => model.symbols.sym("N").into(),
    };
    let dims: Vec<TDim> = std::iter::once(batch)
        .chain(want.iter().map(|&w| TDim::from(w)))
        .collect();
    let model = model.with_input_fact(0, TypedFact::dt_shape(input_type, dims).into())?;
    let typed = model.into_optimized()?;
    typed.into_runnable()
}

impl Predictor for OnnxModel {
    fn shape(&self) -> ImageShape {
        self.shape
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn params(&self) -> usize {
        self.params
    }
    fn describe(&self) -> String {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        format!("onnx:{name}")
    }
    fn log_probs(&self, images: &Tensor<2>, t: f32) -> Result<Tensor<2>> {
        Ok(log_softmax(self.logits(images)?.div_scalar(t), 1))
    }
    fn logits(&self, images: &Tensor<2>) -> Result<Tensor<2>> {
        let [n, _] = images.dims();
        let v = self.host_logits(images)?;
        Ok(Tensor::from_data(
            TensorData::new(v, [n, self.classes]),
            &images.device(),
        ))
    }
}
