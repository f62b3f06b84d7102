//! An ONNX file before a runtime takes it: read and decoded once, and the refusals that need
//! only the file and the options.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::DatumType;

use super::graph::{Signature, check_names, external_files};
use super::{MAX_FIXED_BATCH, OnnxOptions};
use crate::data::ImageShape;
use crate::error::{Error, Result, Setting};
use crate::fsutil::{sha256_file, sha256_hex};

/// An ONNX file read and decoded once, for whichever runtime then takes it: tract
/// (`OnnxModel`) or the tree-ensemble evaluator.
pub(crate) struct OnnxFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Always holds a graph with nodes and outputs (see [`decode_model`]).
    pub proto: pb::ModelProto,
}

impl OnnxFile {
    /// Reads and decodes the file at `path`.
    pub fn read(path: &Path) -> Result<OnnxFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        let proto = decode_model(path, &bytes)?;
        Ok(OnnxFile {
            path: path.to_path_buf(),
            bytes,
            proto,
        })
    }

    /// The graph, which [`decode_model`] checked is there.
    pub fn graph(&self) -> &pb::GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("decode_model checked the graph")
    }

    /// True when the graph holds a tree ensemble (ONNX-ML `TreeEnsemble*`).
    pub fn holds_trees(&self) -> bool {
        self.graph()
            .node
            .iter()
            .any(|n| n.op_type.starts_with("TreeEnsemble"))
    }
}

/// Decodes `bytes`, the ONNX file at `path`, refusing, by name, one whose protobuf does not
/// decode or that holds no graph with nodes and outputs; its `graph` is then always there.
fn decode_model(path: &Path, bytes: &[u8]) -> Result<pb::ModelProto> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let proto = pb::ModelProto::decode(bytes).map_err(|e| {
        bad(format!(
            "not an ONNX model, or a truncated one: its protobuf does not decode ({e})"
        ))
    })?;
    match &proto.graph {
        Some(g) if !g.node.is_empty() && !g.output.is_empty() => Ok(proto),
        _ => Err(bad(
            "not an ONNX model: it holds no graph with outputs".into()
        )),
    }
}

/// The refusals that need only the file: names, operators tract lacks, missing external-data
/// files. Returns the SHA-256 of the file and of its external-data files.
pub(super) fn check_file(
    path: &Path,
    graph: &pb::GraphProto,
    onnx: &tract_onnx::Onnx,
    bytes: &[u8],
) -> Result<String> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    check_names(graph).map_err(&bad)?;
    if let Some(n) = graph.node.iter().find(|n| {
        (n.domain.is_empty() || n.domain == "ai.onnx")
            && !onnx.op_register.0.contains_key(&n.op_type)
    }) {
        return Err(bad(format!(
            "operator {} (node {:?}) is not supported by tract, the ONNX runtime distill \
             uses; re-export the model without it",
            n.op_type, n.name
        )));
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut identity = sha256_hex(bytes);
    for location in external_files(graph).map_err(&bad)? {
        let file = dir.join(&location);
        if !file.is_file() {
            return Err(bad(format!(
                "its external-data file {} is missing (the model names {location:?}, \
                 looked for beside the model)",
                file.display()
            )));
        }
        identity += &sha256_file(&file)?;
    }
    Ok(identity)
}

/// The refusals of options that do not fit the model: a normalization of another channel
/// count, a normalization of byte inputs, a fixed batch too large to run.
pub(super) fn check_options(
    path: &Path,
    sig: &Signature,
    options: &OnnxOptions,
    shape: ImageShape,
) -> Result<()> {
    if let Some(n) = &options.input_norm
        && n.mean.len() != 1
        && n.mean.len() != shape.channels
    {
        return Err(Error::setting(
            Setting::InputNorm,
            format!(
                "gives {} channels but the images have {}",
                n.mean.len(),
                shape.channels
            ),
        ));
    }
    if sig.input_type == DatumType::U8 && options.input_norm.is_some() {
        return Err(Error::config(format!(
            "{}: the model takes uint8 pixels (0 to 255), which {} cannot \
             normalize; drop the option",
            path.display(),
            Setting::InputNorm
        )));
    }
    if let Some(b) = sig.fixed_batch.filter(|&b| b > MAX_FIXED_BATCH) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "its input fixes a batch of {b} images, more than distill runs at once \
                 ({MAX_FIXED_BATCH}); export it with a dynamic batch axis"
            ),
        });
    }
    Ok(())
}
