//! Attributes and initializers of ONNX nodes as plain vectors.
//!
//! Every reader answers a `String` reason on failure; the caller wraps it with the file's path.

use tract_onnx::pb;

/// ONNX element types this module reads.
const FLOAT: i32 = 1;
const DOUBLE: i32 = 11;

/// The named attributes of one node.
pub(super) struct Attrs<'a> {
    node: &'a pb::NodeProto,
}

impl<'a> Attrs<'a> {
    pub(super) fn of(node: &'a pb::NodeProto) -> Self {
        Attrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// An integer list; absent means empty.
    pub(super) fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    /// A single integer, if present.
    pub(super) fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    /// A float list given either as `name` (floats) or as `name_as_tensor` (a float or double
    /// tensor, as ai.onnx.ml opset 3 allows); absent means empty. Both at once is refused
    /// because the two could disagree.
    pub(super) fn floats(&self, name: &str) -> Result<Vec<f32>, String> {
        let listed = self.get(name).filter(|a| !a.floats.is_empty());
        let tensor_name = format!("{name}_as_tensor");
        let tensor = self.get(&tensor_name).and_then(|a| a.t.as_ref());
        match (listed, tensor) {
            (Some(_), Some(_)) => Err(format!(
                "node {:?} gives both {name} and {tensor_name}",
                self.node.name
            )),
            (Some(a), None) => Ok(a.floats.clone()),
            (None, Some(t)) => tensor_f32(t).map_err(|e| format!("{tensor_name}: {e}")),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// A string list (lossy UTF-8); absent means empty.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map_or_else(Vec::new, |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }

    /// A single string, or `default` when absent.
    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or_else(
            || default.to_string(),
            |a| String::from_utf8_lossy(&a.s).into_owned(),
        )
    }
}

/// A float or double tensor's values as f32, from its typed field or its raw bytes. The value
/// count must match the declared dims, so a truncated tensor is refused, not misread.
pub(super) fn tensor_f32(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    if !t.external_data.is_empty() {
        return Err("its values live in an external file, which is not supported here".into());
    }
    let values: Vec<f32> = match t.data_type {
        FLOAT if t.raw_data.is_empty() => t.float_data.clone(),
        FLOAT => raw::<4>(&t.raw_data)?.map(f32::from_le_bytes).collect(),
        // Narrowing to f32 is what onnxruntime does for a float model's thresholds and weights.
        DOUBLE if t.raw_data.is_empty() => t.double_data.iter().map(|&v| v as f32).collect(),
        DOUBLE => raw::<8>(&t.raw_data)?
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        other => {
            return Err(format!(
                "tensor of ONNX type {other}; float or double expected"
            ));
        }
    };
    let declared = t.dims.iter().try_fold(1u64, |n, &d| {
        u64::try_from(d).ok().and_then(|d| n.checked_mul(d))
    });
    match declared {
        Some(n) if n == values.len() as u64 => Ok(values),
        _ => Err(format!(
            "tensor of dims {:?} holds {} values",
            t.dims,
            values.len()
        )),
    }
}

/// Little-endian words of `N` bytes; refuses a length that is not a whole number of words.
fn raw<const N: usize>(bytes: &[u8]) -> Result<impl Iterator<Item = [u8; N]> + '_, String> {
    if !bytes.len().is_multiple_of(N) {
        return Err(format!(
            "raw data of {} bytes is not a whole number of {N}-byte values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N])))
}
