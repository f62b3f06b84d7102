//! The size and speed table of a table run: each model as an ONNX file (the teacher's own,
//! each student exported), its size, and its latency in distill and, where Python can import
//! onnxruntime, in onnxruntime. distill needs neither: without them the columns stay empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;

use super::tables::TableRecipe;
use crate::data::Splits;
use crate::error::{Error, Result};
use crate::eval::ModelReport;
use crate::fsutil::write_atomic;
use crate::model::{Network, export_onnx, is_onnx};
use crate::report::SizeSpeed;

/// Times an ONNX file in onnxruntime: argv is the model, a raw float32 file of rows, and the
/// row width; prints microseconds per row at batch 1 (the median of 500 single-row calls after
/// 20 of warm-up, on one thread, as a server answers one request) and over all rows at once
/// (onnxruntime's default threads).
const ORT_TIMER: &str = r#"
import sys, time
import numpy as np
import onnxruntime as ort
model, rows, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.fromfile(rows, dtype=np.float32).reshape(-1, width)
def session(threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
one, many = session(1), session(0)
name = one.get_inputs()[0].name
times = []
for i in range(min(len(x), 500) + 20):
    t = time.perf_counter()
    one.run(None, {name: x[i % len(x):i % len(x) + 1]})
    times.append(time.perf_counter() - t)
b1 = float(np.median(times[20:])) * 1e6
many.run(None, {name: x})
t = time.perf_counter()
many.run(None, {name: x})
print(b1, (time.perf_counter() - t) / len(x) * 1e6)
"#;

/// One row per model of `models` (teacher first), the students exported next to their weights.
pub(super) fn size_speed(
    recipe: &TableRecipe,
    out: &Path,
    splits: &Splits,
    models: &BTreeMap<String, ModelReport>,
    device: &Device,
) -> Result<Vec<SizeSpeed>> {
    let rows_file = out.join("test_rows.f32");
    let x = splits.test.floats();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(&rows_file, &bytes)?;
    let python = python_with_onnxruntime();
    let mut out_rows = Vec::new();
    for (name, m) in crate::report::by_role(models) {
        let file = match name.as_str() {
            "teacher" if is_onnx(&recipe.teacher) => recipe.teacher.clone(),
            "teacher" => continue,
            _ => export(Path::new(&m.dir), device)?,
        };
        let size = std::fs::metadata(&file)
            .map_err(|e| Error::io("reading", &file, e))?
            .len();
        let ort = python
            .as_deref()
            .and_then(|py| time_in_onnxruntime(py, &file, &rows_file, splits.test.pixels));
        out_rows.push(SizeSpeed {
            model: name.clone(),
            file: file.display().to_string(),
            bytes: size,
            distill_batch1_us: m.infer_us_per_example,
            distill_batched_us: m.batched_us_per_example,
            onnxruntime_batch1_us: ort.map(|o| o.0),
            onnxruntime_batched_us: ort.map(|o| o.1),
        });
    }
    let _ = std::fs::remove_file(&rows_file);
    Ok(out_rows)
}

/// Writes the network in `dir` as `dir/model.onnx`.
fn export(dir: &Path, device: &Device) -> Result<PathBuf> {
    let net = Network::load(dir, device)?;
    let file = dir.join("model.onnx");
    write_atomic(&file, &export_onnx(&net))?;
    Ok(file)
}

/// A Python that imports onnxruntime: `DISTILL_PYTHON`, else `python3`; `None` if neither does.
fn python_with_onnxruntime() -> Option<String> {
    let py = std::env::var("DISTILL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

fn time_in_onnxruntime(py: &str, model: &Path, rows: &Path, width: usize) -> Option<(f64, f64)> {
    let o = Command::new(py)
        .arg("-c")
        .arg(ORT_TIMER)
        .arg(model)
        .arg(rows)
        .arg(width.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (o.status.success(), it.next(), it.next()) {
        (true, Some(Ok(a)), Some(Ok(b))) => Some((a, b)),
        _ => None,
    }
}
