//! The graph around the trees: which output holds the probabilities, and the chain of simple
//! operators from the feature input to it.
//!
//! Exporters put a few element-wise operators before the ensemble (a pipeline's `Scaler` or
//! `Normalizer`, a `Cast`) and after it (an `Identity`, a multiplication by one). Only the
//! chain that leads to the chosen output is read; any operator on it other than these is
//! refused by name, and the label output and its `Cast` are never evaluated.

use std::collections::HashMap;

use tract_onnx::pb;

use super::attrs::{Attrs, tensor_f32};
use super::forest::Forest;

const ML: &str = "ai.onnx.ml";
const FLOAT: i32 = 1;
const DOUBLE: i32 = 11;

/// An element-wise step on a `[rows, cols]` matrix.
#[derive(Debug)]
pub(super) enum Step {
    /// `Scaler`: `(x - offset) * scale`, each of length 1 or `cols`.
    Scale { offset: Vec<f32>, scale: Vec<f32> },
    /// `Normalizer`: each row divided by its max, L1 or L2 norm.
    Normalize(Norm),
    /// `Add`, `Sub`, `Mul` or `Div` with a constant of length 1 or `cols`; `constant_first`
    /// when the constant is the left operand.
    Arith {
        op: Arith,
        constant: Vec<f32>,
        constant_first: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// Value `i` of a per-column constant of length 1 or `cols`.
#[inline]
fn at(v: &[f32], i: usize) -> f32 {
    if v.len() == 1 { v[0] } else { v[i] }
}

impl Step {
    /// The lengths its constants need: 1 or `cols`.
    fn fits(&self, cols: usize) -> bool {
        let ok = |v: &[f32]| v.len() == 1 || v.len() == cols;
        match self {
            Step::Scale { offset, scale } => ok(offset) && ok(scale),
            Step::Normalize(_) => true,
            Step::Arith { constant, .. } => ok(constant),
        }
    }

    /// The widest constant, which fixes the column count where the input does not declare it.
    fn width(&self) -> usize {
        match self {
            Step::Scale { offset, scale } => offset.len().max(scale.len()),
            Step::Normalize(_) => 0,
            Step::Arith { constant, .. } => constant.len(),
        }
    }

    /// Applies the step to `x` (`[rows, cols]`) in place, in f32 as onnxruntime does.
    pub(super) fn apply(&self, x: &mut [f32], cols: usize) {
        for row in x.chunks_exact_mut(cols) {
            match self {
                Step::Scale { offset, scale } => {
                    for (i, v) in row.iter_mut().enumerate() {
                        *v = (*v - at(offset, i)) * at(scale, i);
                    }
                }
                Step::Normalize(norm) => normalize(*norm, row),
                Step::Arith {
                    op,
                    constant,
                    constant_first,
                } => {
                    for (i, v) in row.iter_mut().enumerate() {
                        let (a, b) = if *constant_first {
                            (at(constant, i), *v)
                        } else {
                            (*v, at(constant, i))
                        };
                        *v = match op {
                            Arith::Add => a + b,
                            Arith::Sub => a - b,
                            Arith::Mul => a * b,
                            Arith::Div => a / b,
                        };
                    }
                }
            }
        }
    }
}

/// A row divided by its norm; a row whose norm is zero is left as it is.
fn normalize(norm: Norm, row: &mut [f32]) {
    match norm {
        Norm::Max => {
            let max = row.iter().fold(f32::MIN, |m, &v| m.max(v));
            if max != 0.0 {
                row.iter_mut().for_each(|v| *v /= max);
            }
        }
        Norm::L1 => {
            let sum: f32 = row.iter().map(|v| v.abs()).sum();
            if sum != 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Norm::L2 => {
            let sum: f32 = row.iter().map(|v| v * v).sum();
            if sum != 0.0 {
                row.iter_mut()
                    .for_each(|v| *v = (*v * *v / sum).sqrt().copysign(*v));
            }
        }
    }
}

/// The model as a chain: feature steps, the ensemble, score steps.
#[derive(Debug)]
pub(super) struct Pipeline {
    pub input: String,
    pub output: String,
    pub features: usize,
    pub pre: Vec<Step>,
    pub forest: Forest,
    pub post: Vec<Step>,
}

/// The output to evaluate: `wanted` if given, else the only float tensor output (or the one
/// named `probabilities` among several).
fn choose_output<'a>(
    graph: &'a pb::GraphProto,
    producer: &HashMap<&str, &pb::NodeProto>,
    wanted: Option<&str>,
) -> Result<&'a str, String> {
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let zipmap = |name: &str| producer.get(name).is_some_and(|n| n.op_type == "ZipMap");
    let refuse_zipmap = |name: &str| {
        format!(
            "output {name:?} is a ZipMap (a list of dictionaries), not a probability tensor; \
             export the classifier without it: zipmap=False in onnxmltools, \
             options={{id(clf): {{\"zipmap\": False}}}} in skl2onnx"
        )
    };
    if let Some(w) = wanted {
        let name = names
            .iter()
            .find(|n| **n == w)
            .ok_or_else(|| format!("it has no output named {w:?}; its outputs are {names:?}"))?;
        return if zipmap(name) {
            Err(refuse_zipmap(name))
        } else {
            Ok(name)
        };
    }
    let floats: Vec<&str> = graph
        .output
        .iter()
        .filter(|o| elem_type(o) == Some(FLOAT) && !zipmap(&o.name))
        .map(|o| o.name.as_str())
        .collect();
    match floats[..] {
        [one] => Ok(one),
        [] => match names.iter().find(|n| zipmap(n)) {
            Some(z) => Err(refuse_zipmap(z)),
            None => Err(format!(
                "none of its outputs {names:?} is a float tensor of probabilities"
            )),
        },
        _ => floats
            .iter()
            .find(|n| **n == "probabilities")
            .copied()
            .ok_or_else(|| {
                format!(
                    "it has several float outputs ({floats:?}); choose the probabilities by name"
                )
            }),
    }
}

fn elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t.elem_type),
    }
}

/// The declared column count of a `[N, F]` input, when it is a fixed number.
fn declared_width(v: &pb::ValueInfoProto) -> Result<Option<usize>, String> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("its input {:?} is not a tensor", v.name));
    };
    if t.elem_type != FLOAT {
        return Err(format!(
            "its input {:?} is of ONNX type {}; the feature input must be float32",
            v.name, t.elem_type
        ));
    }
    let dims = t
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    match dims {
        [] => Ok(None),
        [_, d] => Ok(match d.value {
            Some(Value::DimValue(w)) if w > 0 => usize::try_from(w).ok(),
            _ => None,
        }),
        _ => Err(format!(
            "its input {:?} has {} dimensions; a feature table is [rows, features]",
            v.name,
            dims.len()
        )),
    }
}

/// What one node on the chain contributes.
enum Link {
    /// Passes its data through unchanged (`Identity`, a `Cast` to float).
    Pass,
    Step(Step),
    Trees(Box<Forest>),
}

/// The node `node` that computes `value`: its contribution and the name of its data input.
fn link<'a>(
    node: &'a pb::NodeProto,
    value: &str,
    inits: &HashMap<&str, &pb::TensorProto>,
) -> Result<(&'a str, Link), String> {
    let op = node.op_type.as_str();
    let domain = node.domain.as_str();
    let standard = domain.is_empty() || domain == "ai.onnx";
    let a = Attrs::of(node);
    let input = |i: usize| {
        node.input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("node {:?} ({op}) lacks input {i}", node.name))
    };
    let link = match (op, standard, domain == ML) {
        ("Identity", true, _) => Link::Pass,
        ("Cast", true, _) => match a.int("to") {
            Some(t) if t == i64::from(FLOAT) || t == i64::from(DOUBLE) => Link::Pass,
            to => {
                return Err(format!(
                    "node {:?} casts the probabilities to ONNX type {to:?}; float is expected",
                    node.name
                ));
            }
        },
        ("Scaler", _, true) => {
            let (offset, scale) = (a.floats("offset")?, a.floats("scale")?);
            if offset.is_empty() || scale.is_empty() {
                return Err(format!("Scaler {:?} lacks its offset or scale", node.name));
            }
            Link::Step(Step::Scale { offset, scale })
        }
        ("Normalizer", _, true) => {
            Link::Step(Step::Normalize(match a.string("norm", "MAX").as_str() {
                "MAX" => Norm::Max,
                "L1" => Norm::L1,
                "L2" => Norm::L2,
                other => {
                    return Err(format!(
                        "Normalizer {:?} has unknown norm {other:?}",
                        node.name
                    ));
                }
            }))
        }
        ("Add" | "Sub" | "Mul" | "Div", true, _) => return arith(node, inits),
        ("TreeEnsembleClassifier", _, true) => {
            if node.output.get(1).is_none_or(|o| o != value) {
                return Err(format!(
                    "output {value:?} is the label of TreeEnsembleClassifier {:?}, not its probabilities",
                    node.name
                ));
            }
            let forest = Forest::from_node(node)
                .map_err(|e| format!("TreeEnsembleClassifier {:?}: {e}", node.name))?;
            Link::Trees(Box::new(forest))
        }
        _ => {
            let domain = if domain.is_empty() { "ai.onnx" } else { domain };
            return Err(format!(
                "operator {op} (domain {domain}, node {:?}) lies on the way to the probabilities; \
                 the tree-ensemble evaluator supports TreeEnsembleClassifier, Scaler, Normalizer, \
                 Cast, Identity and Add, Sub, Mul, Div by a constant",
                node.name
            ));
        }
    };
    Ok((input(0)?, link))
}

/// An `Add`, `Sub`, `Mul` or `Div` with one constant operand (an initializer).
fn arith<'a>(
    node: &'a pb::NodeProto,
    inits: &HashMap<&str, &pb::TensorProto>,
) -> Result<(&'a str, Link), String> {
    let op = match node.op_type.as_str() {
        "Add" => Arith::Add,
        "Sub" => Arith::Sub,
        "Mul" => Arith::Mul,
        _ => Arith::Div,
    };
    let [x, y] = node.input.as_slice() else {
        return Err(format!(
            "{} {:?} does not have two inputs",
            node.op_type, node.name
        ));
    };
    let (data, constant, constant_first) = match (inits.get(x.as_str()), inits.get(y.as_str())) {
        (None, Some(c)) => (x, c, false),
        (Some(c), None) => (y, c, true),
        _ => {
            return Err(format!(
                "{} {:?} needs exactly one constant operand",
                node.op_type, node.name
            ));
        }
    };
    let constant =
        tensor_f32(constant).map_err(|e| format!("constant {:?}: {e}", constant.name))?;
    let step = Step::Arith {
        op,
        constant,
        constant_first,
    };
    Ok((data.as_str(), Link::Step(step)))
}

/// Reads the chain from the feature input to the chosen output (`wanted`, or found as
/// [`choose_output`] says).
pub(super) fn build(graph: &pb::GraphProto, wanted: Option<&str>) -> Result<Pipeline, String> {
    let mut producer: HashMap<&str, &pb::NodeProto> = HashMap::new();
    for n in &graph.node {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o, n);
        }
    }
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let output = choose_output(graph, &producer, wanted)?;
    let (mut pre, mut post, mut forest) = (Vec::new(), Vec::new(), None);
    let (mut name, mut hops) = (output, 0usize);
    let input = loop {
        let is_input = |i: &&pb::ValueInfoProto| i.name == name && !inits.contains_key(name);
        if let Some(i) = graph.input.iter().find(is_input) {
            break i;
        }
        let node = producer
            .get(name)
            .ok_or_else(|| format!("value {name:?} is neither an input nor computed by a node"))?;
        hops += 1;
        if hops > graph.node.len() {
            return Err("its graph has a cycle".into());
        }
        let (data, link) = link(node, name, &inits)?;
        match link {
            Link::Pass => {}
            Link::Step(s) if forest.is_some() => pre.push(s),
            Link::Step(s) => post.push(s),
            Link::Trees(_) if forest.is_some() => {
                return Err("two tree ensembles lie on the way to the probabilities".into());
            }
            Link::Trees(f) => forest = Some(f),
        }
        name = data;
    };
    let forest = *forest
        .ok_or_else(|| format!("output {output:?} does not come from a TreeEnsembleClassifier"))?;
    // Both were collected walking backwards from the output.
    pre.reverse();
    post.reverse();
    let declared = declared_width(input)?;
    let needed = pre
        .iter()
        .map(Step::width)
        .fold(forest.features, usize::max);
    let features = declared.unwrap_or(needed.max(1));
    if forest.features > features {
        return Err(format!(
            "its trees read feature {} but its input {:?} has {features} features",
            forest.features - 1,
            input.name
        ));
    }
    if !pre.iter().all(|s| s.fits(features)) || !post.iter().all(|s| s.fits(forest.classes)) {
        return Err("a Scaler or constant on the way to the probabilities does not match the width of its data".into());
    }
    Ok(Pipeline {
        input: input.name.clone(),
        output: output.to_string(),
        features,
        pre,
        forest,
        post,
    })
}
