//! ONNX teachers through onnxruntime instead of tract, behind the `ort` cargo feature: the
//! library is loaded at run time from `ORT_DYLIB_PATH` (a system install, or the
//! `libonnxruntime.so` that `pip install onnxruntime` puts in `onnxruntime/capi/`), and chosen
//! with `DISTILL_ONNX_RUNTIME=onnxruntime`. tract stays the default: its results do not depend
//! on the thread count, which the soft-target cache relies on; onnxruntime's need not.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// An onnxruntime session, shared by the clones of one model, and the output it reads.
pub(super) type OrtSession = (Arc<Mutex<ort::session::Session>>, String);

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

fn environment() -> Result<&'static ort::environment::Environment> {
    let env = ENVIRONMENT.get_or_init(|| {
        let lib = std::env::var("ORT_DYLIB_PATH").map_err(|_| {
            "DISTILL_ONNX_RUNTIME=onnxruntime needs ORT_DYLIB_PATH, the path of \
             libonnxruntime.so"
                .to_string()
        })?;
        ort::init_from(&lib)
            .map_err(|e| format!("loading onnxruntime from {lib}: {e}"))?
            .build()
            .map_err(|e| format!("starting onnxruntime: {e}"))
    });
    env.as_ref().map_err(|e| Error::config(e.clone()))
}

/// A session for the model at `path`, on as many threads as the pool has, reading `output`.
pub(super) fn session(path: &Path, output: &str) -> Result<OrtSession> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let env = environment()?;
    let mut builder = ort::session::Session::builder(env)
        .map_err(|e| bad(format!("onnxruntime: {e}")))?
        .with_intra_threads(rayon::current_num_threads())
        .map_err(|e| bad(format!("onnxruntime: {e}")))?;
    let session = builder
        .commit_from_file(path)
        .map_err(|e| bad(format!("onnxruntime cannot run it: {e}")))?;
    Ok((Arc::new(Mutex::new(session)), output.to_string()))
}

/// Runs `session` on `x` of shape `dims`; returns the first output, flattened.
pub(super) fn run(
    session: &OrtSession,
    dims: &[usize],
    x: Vec<f32>,
    path: &Path,
) -> Result<Vec<f32>> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let input = ort::value::Tensor::from_array((shape, x))
        .map_err(|e| bad(format!("onnxruntime input: {e}")))?;
    let (session, output) = session;
    let mut session = session
        .lock()
        .map_err(|_| bad("an onnxruntime session was poisoned".into()))?;
    let outputs = session
        .run(ort::inputs![input])
        .map_err(|e| bad(format!("running it in onnxruntime: {e}")))?;
    let (_, values) = outputs[output.as_str()]
        .try_extract_tensor::<f32>()
        .map_err(|e| bad(format!("its output is not float32: {e}")))?;
    Ok(values.to_vec())
}
