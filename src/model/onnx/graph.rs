//! What an ONNX file's graph declares, read before tract sees it: which input takes the images
//! and in which layout, which output holds the class scores, and the checks that keep tract
//! from panicking on a malformed file.
//!
//! Exporters disagree on layouts and outputs: PyTorch feeds `[N, C, H, W]`, Keras (through
//! tf2onnx) `[N, H, W, C]` or `[N, H, W]` for one channel, scikit-learn (skl2onnx) puts an int64
//! label before the probabilities, binary classifiers give one score per image. The layout is
//! read from the input's declared sizes, and the scores are the first float output.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::prelude::DatumType;

use crate::data::ImageShape;
use crate::error::{Error, Result};

/// How a model's input lays out each image's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `[N, C·H·W]`, channels outermost (as distill's own models and PyTorch MLPs take them).
    Flat,
    /// `[N, H, W]`: one channel (Keras models that start with a `Flatten` of 28×28 images).
    Plane,
    /// `[N, C, H, W]` (PyTorch convolutions).
    Nchw,
    /// `[N, H, W, C]` (Keras and TensorFlow convolutions).
    Nhwc,
}

impl Layout {
    /// The sizes after the batch that this layout gives images of `shape`.
    pub(super) fn dims(self, shape: ImageShape) -> Vec<usize> {
        let ImageShape {
            channels: c,
            height: h,
            width: w,
        } = shape;
        match self {
            Layout::Flat => vec![c * h * w],
            Layout::Plane => vec![h, w],
            Layout::Nchw => vec![c, h, w],
            Layout::Nhwc => vec![h, w, c],
        }
    }

    /// `images` (each `C·H·W`, channels outermost) in this layout; only channels-last with
    /// more than one channel moves anything.
    pub(super) fn arrange(self, shape: ImageShape, images: &[f32]) -> Cow<'_, [f32]> {
        if self != Layout::Nhwc || shape.channels == 1 {
            return Cow::Borrowed(images);
        }
        let (plane, c) = (shape.height * shape.width, shape.channels);
        images
            .chunks(shape.len())
            .flat_map(|image| (0..plane * c).map(move |i| image[(i % c) * plane + i / c]))
            .collect()
    }
}

/// The parts of a graph distill uses: the images' input and the scores' output.
#[derive(Debug, Clone)]
pub(super) struct Signature {
    /// How the input lays out each image.
    pub layout: Layout,
    /// The batch size the input fixes, if it fixes one.
    pub fixed_batch: Option<usize>,
    /// Index into the graph's outputs of the class scores.
    pub output: usize,
    /// The input's element type: floats take pixels in [0, 1], `U8` takes them as 0 to 255.
    pub input_type: DatumType,
}

/// A dimension as an ONNX file declares it: a number, or a name (symbolic) or nothing.
fn declared(d: &pb::tensor_shape_proto::Dimension) -> Option<i64> {
    match &d.value {
        Some(DimValue::DimValue(v)) if *v > 0 => Some(*v),
        _ => None,
    }
}

fn show_dims(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("N".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The tensor type a value declares, if it declares one.
fn tensor_type(v: &pb::ValueInfoProto) -> Option<&pb::type_proto::Tensor> {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    }
}

/// Reads the graph's image input and score output for images of `shape`. Every refusal names
/// the file (`path`) and what the model declares.
pub(super) fn signature(
    path: &Path,
    graph: &pb::GraphProto,
    shape: ImageShape,
    wanted: Option<&str>,
) -> Result<Signature> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let input = image_input(graph).map_err(bad)?;
    let Some(tensor) = tensor_type(input) else {
        return Err(bad(format!("its input {:?} is not a tensor", input.name)));
    };
    let input_type = input_type(input, tensor).map_err(bad)?;
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(declared).collect())
        .unwrap_or_default();
    let layout = layout(path, input, &dims, shape)?;
    let output = score_output(graph, wanted).map_err(bad)?;
    Ok(Signature {
        layout,
        fixed_batch: dims[0].map(|b| b as usize),
        output,
        input_type,
    })
}

/// The graph's one input that is not an initializer: the images.
fn image_input(graph: &pb::GraphProto) -> std::result::Result<&pb::ValueInfoProto, String> {
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initialized.contains(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(format!(
            "it takes {} inputs ({names:?}); a teacher takes exactly one, the images",
            inputs.len()
        ));
    };
    Ok(input)
}

/// The element type the images are fed as.
fn input_type(
    input: &pb::ValueInfoProto,
    tensor: &pb::type_proto::Tensor,
) -> std::result::Result<DatumType, String> {
    use pb::tensor_proto::DataType as T;
    match tensor.elem_type {
        t if t == T::Float as i32 => Ok(DatumType::F32),
        t if t == T::Float16 as i32 => Ok(DatumType::F16),
        t if t == T::Double as i32 => Ok(DatumType::F64),
        t if t == T::Uint8 as i32 => Ok(DatumType::U8),
        t => Err(format!(
            "its input {:?} is of ONNX type {t}; distill feeds pixels as float32, float16, \
             float64 or uint8",
            input.name
        )),
    }
}

/// The layout the input's declared sizes `dims` give images of `shape`.
fn layout(
    path: &Path,
    input: &pb::ValueInfoProto,
    dims: &[Option<i64>],
    shape: ImageShape,
) -> Result<Layout> {
    let candidates: &[Layout] = match dims.len() {
        2 => &[Layout::Flat],
        3 if shape.channels != 1 => {
            return Err(Error::Mismatch(format!(
                "{}: the model's input {:?} has shape {}, one channel per image, but the data's \
                 images are {shape} ({} channels)",
                path.display(),
                input.name,
                show_dims(dims),
                shape.channels
            )));
        }
        3 => &[Layout::Plane],
        4 => &[Layout::Nchw, Layout::Nhwc],
        r => {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "its input {:?} has rank {r} {}; distill feeds [N, C·H·W] (rank 2), \
                     [N, H, W] (rank 3, one channel), [N, C, H, W] or [N, H, W, C] (rank 4)",
                    input.name,
                    show_dims(dims)
                ),
            });
        }
    };
    let fits = |l: &Layout| {
        dims[1..]
            .iter()
            .zip(l.dims(shape))
            .all(|(d, w)| d.is_none_or(|d| d as usize == w))
    };
    // All-symbolic sizes fit both rank-4 layouts; PyTorch's channels-first is then assumed.
    if let Some(&layout) = candidates.iter().find(|l| fits(l)) {
        return Ok(layout);
    }
    let gives: Vec<String> = candidates
        .iter()
        .map(|l| {
            let d: Vec<Option<i64>> = std::iter::once(None)
                .chain(l.dims(shape).into_iter().map(|w| Some(w as i64)))
                .collect();
            show_dims(&d)
        })
        .collect();
    Err(Error::Mismatch(format!(
        "{}: the model's input {:?} has shape {} but the data's {} images give {}",
        path.display(),
        input.name,
        show_dims(dims),
        shape,
        gives.join(" or ")
    )))
}

/// The index of the graph output that holds the class scores: the one named `wanted`, else the
/// first float output of rank 1 or 2 (or undeclared rank; rank 1 is a binary classifier's one
/// score per image).
fn score_output(
    graph: &pb::GraphProto,
    wanted: Option<&str>,
) -> std::result::Result<usize, String> {
    use pb::tensor_proto::DataType as T;
    let float = [T::Float, T::Float16, T::Double, T::Bfloat16].map(|t| t as i32);
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if let Some(w) = wanted {
        return names
            .iter()
            .position(|n| *n == w)
            .ok_or_else(|| format!("has no output named {w:?} (its outputs: {names:?})"));
    }
    graph
        .output
        .iter()
        .position(|o| {
            // tract's protobuf types know only tensors: a sequence or map (as skl2onnx's
            // ZipMap gives) reads as a type without a tensor.
            o.r#type.is_none()
                || tensor_type(o).is_some_and(|t| {
                    float.contains(&t.elem_type)
                        && t.shape
                            .as_ref()
                            .is_none_or(|s| matches!(s.dim.len(), 1 | 2))
                })
        })
        .ok_or_else(|| {
            format!(
                "none of its outputs {names:?} is a float tensor [N, classes] of scores or \
                 probabilities (a scikit-learn model needs skl2onnx's option zipmap=False)"
            )
        })
}

/// True when graph output `output` comes out of a `Sigmoid`, through any shape-only nodes after
/// it: a binary classifier's one output is then a probability, not a logit.
pub(super) fn ends_in_sigmoid(graph: &pb::GraphProto, output: usize) -> bool {
    const PASS_THROUGH: [&str; 6] = [
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Cast",
    ];
    let mut name = graph.output[output].name.as_str();
    // At most one step per node: a malformed file may loop (a node reading its own output).
    for _ in 0..graph.node.len() {
        let Some(node) = graph
            .node
            .iter()
            .find(|n| n.output.iter().any(|o| o == name))
        else {
            return false;
        };
        match node.op_type.as_str() {
            "Sigmoid" => return true,
            op if PASS_THROUGH.contains(&op) && !node.input.is_empty() => name = &node.input[0],
            _ => return false,
        }
    }
    false
}

/// Makes the graph what tract should parse: only the scores' output, and no declared shapes
/// inside or at the output. Exporters name the batch dimension as they please ("batch",
/// "unk__21", "s0"), and tract refuses to unify those names with the batch it is given, so
/// every shape after the input is left for tract to infer. In place: a teacher's weights are
/// not copied.
pub(super) fn prepare(proto: &mut pb::ModelProto, output: usize) {
    if let Some(graph) = proto.graph.as_mut() {
        let mut kept = graph.output.swap_remove(output);
        if let Some(pb::type_proto::Value::TensorType(t)) =
            kept.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
        graph.output = vec![kept];
        graph.value_info.clear();
    }
}

/// Every value a node reads, and every graph output, must be produced by something: a graph
/// input, an initializer or a node. tract 0.23 indexes its name table without checking (and
/// panics), so a file that breaks this is refused here with the name.
pub(super) fn check_names(graph: &pb::GraphProto) -> std::result::Result<(), String> {
    let known: HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    for n in &graph.node {
        if let Some(i) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            return Err(format!(
                "node {:?} ({}) reads {i:?}, which no input, initializer or node produces",
                n.name, n.op_type
            ));
        }
    }
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| !known.contains(o.name.as_str()))
    {
        return Err(format!("its output {:?} is produced by no node", o.name));
    }
    Ok(())
}

/// Names of the external-data files the graph's initializers refer to.
pub(super) fn external_files(
    graph: &pb::GraphProto,
) -> std::result::Result<BTreeSet<String>, String> {
    let external = pb::tensor_proto::DataLocation::External as i32;
    graph
        .initializer
        .iter()
        .filter(|t| t.data_location == Some(external))
        .map(|t| {
            t.external_data
                .iter()
                .find(|e| e.key == "location")
                .map(|e| e.value.clone())
                .ok_or_else(|| {
                    format!(
                        "initializer {:?} is stored externally but names no file",
                        t.name
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph with one float input of `dims` (0 for a symbolic size) and one float output.
    fn graph(dims: &[i64]) -> pb::GraphProto {
        let value = |name: &str, dims: &[i64]| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| pb::tensor_shape_proto::Dimension {
                                value: Some(if d > 0 {
                                    DimValue::DimValue(d)
                                } else {
                                    DimValue::DimParam("n".into())
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::GraphProto {
            input: vec![value("x", dims)],
            output: vec![value("y", &[0, 10])],
            ..Default::default()
        }
    }

    fn layout(dims: &[i64], shape: ImageShape) -> Result<Layout> {
        signature(Path::new("m.onnx"), &graph(dims), shape, None).map(|s| s.layout)
    }

    #[test]
    fn the_layout_is_read_from_the_declared_sizes() {
        let rgb = ImageShape {
            channels: 3,
            height: 8,
            width: 8,
        };
        assert_eq!(layout(&[0, 3, 8, 8], rgb).unwrap(), Layout::Nchw);
        assert_eq!(layout(&[0, 8, 8, 3], rgb).unwrap(), Layout::Nhwc);
        assert_eq!(layout(&[0, 0, 0, 0], rgb).unwrap(), Layout::Nchw);
        assert_eq!(layout(&[0, 0, 0, 3], rgb).unwrap(), Layout::Nhwc);
        assert_eq!(layout(&[0, 192], rgb).unwrap(), Layout::Flat);
        assert_eq!(
            layout(&[0, 8, 8], ImageShape::gray(8, 8)).unwrap(),
            Layout::Plane
        );
        let e = layout(&[0, 8, 8], rgb).unwrap_err().to_string();
        assert!(
            e.contains("m.onnx") && e.contains("one channel per image"),
            "{e}"
        );
        let e = layout(&[0, 4, 8, 8], rgb).unwrap_err().to_string();
        assert!(e.contains("[N, 3, 8, 8] or [N, 8, 8, 3]"), "{e}");
    }

    #[test]
    fn a_sigmoid_is_found_through_shape_only_nodes_and_a_loop_ends() {
        let node = |op: &str, input: &str, output: &str| pb::NodeProto {
            op_type: op.into(),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        };
        let mut g = graph(&[0, 64]);
        g.node = vec![
            node("Sigmoid", "x", "p"),
            node("Reshape", "p", "q"),
            node("Identity", "q", "y"),
        ];
        assert!(ends_in_sigmoid(&g, 0));
        g.node[0].op_type = "Relu".into();
        assert!(!ends_in_sigmoid(&g, 0));
        // An Identity that reads its own output: the walk stops.
        g.node = vec![node("Identity", "y", "y")];
        assert!(!ends_in_sigmoid(&g, 0));
    }

    #[test]
    fn channels_last_moves_each_channel_innermost() {
        let shape = ImageShape {
            channels: 2,
            height: 1,
            width: 3,
        };
        // Two images: channel planes [0 1 2 | 3 4 5], then [6 7 8 | 9 10 11].
        let images: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let out = Layout::Nhwc.arrange(shape, &images);
        assert_eq!(*out, [0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);
        assert_eq!(*Layout::Nchw.arrange(shape, &images), images);
    }
}
