//! Students out: a trained network as an ONNX file for onnxruntime (or any ONNX runtime), built
//! by walking its [`Layer`]s. The protobuf is built with tract's generated ONNX types and
//! encoded by `prost`, so the wire format is never written by hand.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension::Value as DimValue};

use super::Predictor;
use super::architecture::NamedArray;
use super::checkpoint::Network;
use super::layers::{Layer, Norm, fold_batch_norm};

/// Operator set the exported files declare (supported by onnxruntime since 1.12).
pub const ONNX_OPSET: i64 = 17;
/// Name of the exported model's input: float32 pixels in [0, 1].
pub const ONNX_INPUT: &str = "pixels";
/// Name of the input of a model of a feature table: float32 raw features.
pub const ONNX_FEATURES: &str = "features";
/// Name of the exported model's output: class logits.
pub const ONNX_OUTPUT: &str = "logits";
/// IR version that goes with opset 17.
const IR_VERSION: i64 = 8;
/// Name of the symbolic batch axis.
const BATCH: &str = "batch";

/// An ONNX graph under construction: one value flows from the input through each added layer.
struct OnnxGraph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    current: String,
}

impl OnnxGraph {
    fn new(input: &str) -> Self {
        OnnxGraph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            current: input.into(),
        }
    }

    fn constant(&mut self, a: &NamedArray) -> String {
        let name = a.name.clone();
        self.initializers.push(pb::TensorProto {
            dims: a.shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            name: name.clone(),
            raw_data: a.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, mut inputs: Vec<String>, attribute: Vec<pb::AttributeProto>) {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        inputs.insert(0, std::mem::replace(&mut self.current, output.clone()));
        self.nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![output],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    /// `x · weight + bias`, with `weight` stored `[in, out]` as burn's `Linear` holds it.
    fn dense(&mut self, weight: &NamedArray, bias: &NamedArray) {
        let w = self.constant(weight);
        let b = self.constant(bias);
        self.node("Gemm", vec![w, b], Vec::new());
    }

    /// Element-wise `max(x, 0)`.
    fn relu(&mut self) {
        self.node("Relu", Vec::new(), Vec::new());
    }

    /// Reshapes to `dims` (`-1` once for the batch axis).
    fn reshape(&mut self, dims: &[i64]) {
        let name = format!("shape_{}", self.nodes.len());
        self.initializers.push(pb::TensorProto {
            dims: vec![dims.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            name: name.clone(),
            raw_data: dims.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        self.node("Reshape", vec![name], Vec::new());
    }

    /// A 3×3 convolution with one pixel of zero padding on every side, `weight` stored
    /// `[out, in, 3, 3]` as both burn and ONNX hold it.
    fn conv3x3(&mut self, weight: &NamedArray, bias: &NamedArray) {
        let w = self.constant(weight);
        let b = self.constant(bias);
        let attributes = vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])];
        self.node("Conv", vec![w, b], attributes);
    }

    /// 2×2 max-pooling with stride 2 (odd edges dropped, as burn and PyTorch do).
    fn max_pool2(&mut self) {
        let attributes = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
        self.node("MaxPool", Vec::new(), attributes);
    }

    /// Flattens every axis after the batch into one.
    fn flatten(&mut self) {
        let axis = pb::AttributeProto {
            name: "axis".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        };
        self.node("Flatten", Vec::new(), vec![axis]);
    }
}

impl OnnxGraph {
    /// Adds every layer, a batch norm folded into the convolution before it.
    fn layers(&mut self, layers: &[Layer]) {
        let mut layers = layers.iter().peekable();
        while let Some(layer) = layers.next() {
            match layer {
                Layer::Unflatten([c, h, w]) => self.reshape(&[-1, *c as i64, *h as i64, *w as i64]),
                Layer::Conv3x3 { weight, bias } => {
                    match layers.next_if(|l| matches!(l, Layer::BatchNorm(_))) {
                        Some(Layer::BatchNorm(norm)) => {
                            let (w, b) = fold_batch_norm((weight, bias), norm);
                            self.conv3x3(&w, &b)
                        }
                        _ => self.conv3x3(weight, bias),
                    }
                }
                Layer::BatchNorm(norm) => self.batch_norm(norm),
                Layer::MaxPool2 => self.max_pool2(),
                Layer::Relu => self.relu(),
                Layer::Flatten => self.flatten(),
                Layer::Dense { weight, bias } => self.dense(weight, bias),
            }
        }
    }

    /// A batch norm no convolution precedes, as ONNX's own operator.
    fn batch_norm(&mut self, norm: &Norm) {
        let inputs = [&norm.gamma, &norm.beta, &norm.mean, &norm.var]
            .map(|a| self.constant(a))
            .to_vec();
        let epsilon = pb::AttributeProto {
            name: "epsilon".into(),
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            f: norm.epsilon,
            ..Default::default()
        };
        self.node("BatchNormalization", inputs, vec![epsilon]);
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimValue::DimValue(*v as i64),
                None => DimValue::DimParam(BATCH.into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The name of the ONNX input of `net`: `features` for a model of a table, `pixels` otherwise.
pub fn onnx_input_name(net: &Network) -> &'static str {
    match net.config.standardize() {
        Some(_) => ONNX_FEATURES,
        None => ONNX_INPUT,
    }
}

/// The ONNX bytes of `net`: opset 17, input `pixels` `[batch, C·H·W]` (an MLP's layout), or
/// for a model of a table `features` `[batch, F]` of raw values (its standardization folded
/// into the first layer), output `logits` `[batch, classes]`, the batch axis dynamic. Dropout,
/// a training-time behaviour, is not part of the graph.
pub fn export_onnx(net: &Network) -> Vec<u8> {
    let input = onnx_input_name(net);
    let mut g = OnnxGraph::new(input);
    g.layers(&net.net.layers());
    if let Some(last) = g.nodes.last_mut() {
        last.output[0] = ONNX_OUTPUT.into();
    }
    let shape = net.shape();
    let meta = [
        ("distill.architecture", net.describe()),
        ("distill.image_shape", shape.to_string()),
        (
            "distill.input",
            match input {
                ONNX_FEATURES => "float32 raw features".to_string(),
                _ => "float32 pixels in [0, 1]".to_string(),
            },
        ),
    ];
    let model = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: ONNX_OPSET,
        }],
        producer_name: "distill".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(pb::GraphProto {
            node: g.nodes,
            name: "distill_student".into(),
            initializer: g.initializers,
            input: vec![value_info(input, &[None, Some(shape.len())])],
            output: vec![value_info(ONNX_OUTPUT, &[None, Some(net.classes())])],
            ..Default::default()
        }),
        metadata_props: meta
            .into_iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.into(),
                value: v,
            })
            .collect(),
        ..Default::default()
    };
    model.encode_to_vec()
}
