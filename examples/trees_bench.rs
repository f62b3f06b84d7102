//! Times distill's native tree-ensemble evaluator on one ONNX file and a float32 `.npy` table
//! of rows, and prints one JSON line; `bench/trees.py` runs it beside onnxruntime.
//!
//!     cargo run --release --example trees_bench -- MODEL.onnx ROWS.npy [PROBS.npy] [REPEATS]
//!
//! The rows are scored in one call (the evaluator splits them across rayon's threads; set
//! `RAYON_NUM_THREADS` to pin the count). The best of REPEATS runs (default 3) is reported.
//! With PROBS.npy, the probabilities of the last run are written there for comparison.

use std::path::Path;
use std::time::Instant;

use distill::model::TreeEnsemble;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, rows, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: trees_bench MODEL.onnx ROWS.npy [PROBS.npy] [REPEATS]");
    };
    let repeats: usize = rest.get(1).map_or(Ok(3), |r| r.parse())?;
    let start = Instant::now();
    let teacher = TreeEnsemble::load(Path::new(model))?;
    let load_s = start.elapsed().as_secs_f64();
    let bytes = std::fs::read(rows)?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
    let shape = npy.shape().to_vec();
    let x: Vec<f32> = npy.into_vec()?;
    let n = usize::try_from(shape[0])?;
    let mut best = f64::INFINITY;
    let mut probs = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        probs = teacher.probabilities(&x, n)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    if let Some(out) = rest.first() {
        use npyz::WriterBuilder;
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[n as u64, teacher.classes() as u64])
            .writer(&mut file)
            .begin_nd()?;
        w.extend(probs.iter().copied())?;
        w.finish()?;
    }
    println!(
        "{{\"rows\": {n}, \"trees\": {}, \"classes\": {}, \"threads\": {}, \"load_s\": {load_s:.3}, \"score_s\": {best:.4}}}",
        teacher.trees(),
        teacher.classes(),
        rayon::current_num_threads()
    );
    Ok(())
}
