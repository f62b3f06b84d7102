//! Every refused input, one table: the input, the message it must name, the exit code. The same
//! table is `docs/errors.md` (a test keeps the two in step; `DISTILL_WRITE_ERRORS_DOC=1`
//! rewrites the document from the messages the binary prints).

use std::path::Path;

use crate::common::{
    distill, distill_with_env, edit_onnx, npy, stderr, tiny_dataset, write_idx, write_npz,
};
use tract_onnx::pb as distill_pb;

/// One refused input: `args` with `{T}` (a tiny 3-class dataset), `{D}` (a data directory
/// made for this case), `{M}` (a trained model of `{T}`), `{O}` (a fresh output directory) and
/// `{F}` (a plain file) filled in.
pub struct Case {
    id: &'static str,
    input: &'static str,
    args: &'static [&'static str],
    needle: &'static str,
    code: i32,
}

pub const fn case(
    id: &'static str,
    input: &'static str,
    args: &'static [&'static str],
    needle: &'static str,
    code: i32,
) -> Case {
    Case {
        id,
        input,
        args,
        needle,
        code,
    }
}

const T: &[&str] = &[
    "--data-dir",
    "{T}",
    "--validation-size",
    "6",
    "--epochs",
    "1",
];

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Bad usage or configuration: exit 2.
    case("spec-not-mlp", "a model spec of an unknown kind", &["train", "--model", "rnn:3", "--out", "{O}"], "must start with", 2),
    case("spec-bad-width", "a width that is not a number", &["train", "--model", "mlp:12,abc", "--out", "{O}"], "is not a positive integer", 2),
    case("spec-zero-width", "a layer of width 0", &["train", "--model", "mlp:0", "--out", "{O}"], "a layer width is 0", 2),
    case("spec-huge-width", "a layer wider than 65,536", &["train", "--model", "mlp:70000", "--out", "{O}"], "over 65536", 2),
    case("epochs-zero", "--epochs 0", &["train", "--epochs", "0", "--out", "{O}"], "epochs must be at least 1", 2),
    case("batch-zero", "--batch-size 0", &["train", "--batch-size", "0", "--out", "{O}"], "batch size must be at least 1", 2),
    case("lr-zero", "--lr 0", &["train", "--lr", "0", "--out", "{O}"], "learning rate must be", 2),
    case("lr-negative", "--lr -1", &["train", "--lr", "-1", "--out", "{O}"], "learning rate must be", 2),
    case("warmup-all", "a warm-up as long as training", &["train", "--epochs", "3", "--warmup-epochs", "3", "--out", "{O}"], "warm-up of 3 epochs", 2),
    case("jitter-large", "--jitter 9", &["train", "--jitter", "9", "--out", "{O}"], "over the limit of 8", 2),
    case("dropout-one", "--input-dropout 1", &["train", "--input-dropout", "1", "--out", "{O}"], "input dropout must be in [0, 1)", 2),
    case("dropout-negative", "--hidden-dropout -0.1", &["train", "--hidden-dropout", "-0.1", "--out", "{O}"], "hidden dropout must be in [0, 1)", 2),
    case("temperature-zero", "--temperature 0", &["distill", "--teacher", "{M}", "--temperature", "0", "--out", "{O}"], "--temperature must be a finite number above 0", 2),
    case("alpha-above-one", "--alpha 1.5", &["distill", "--teacher", "{M}", "--alpha", "1.5", "--out", "{O}"], "--alpha must be in [0, 1]", 2),
    case("reproduce-temperature", "reproduce --temperature -1", &["reproduce", "--preset", "smoke", "--temperature", "-1", "--out", "{O}"], "--temperature must be", 2),
    case("fraction-zero", "--transfer-fraction 0", &["distill", "--teacher", "{M}", "--transfer-fraction", "0", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6"], "--transfer-fraction must be in (0, 1]", 2),
    case("omit-unknown-class", "--omit-classes of a class the data lacks", &["distill", "--teacher", "{M}", "--omit-classes", "7", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6"], "class 7 does not exist", 2),
    case("omit-and-only", "--omit-classes with --only-classes", &["distill", "--teacher", "{M}", "--omit-classes", "0", "--only-classes", "1", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6"], "not both", 2),
    case("omit-everything", "every class omitted", &["distill", "--teacher", "{M}", "--omit-classes", "0,1,2", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6"], "every class is omitted", 2),
    case("augment-cache-unshifted", "--augment-cache for a student without --jitter", &["distill", "--teacher", "{M}", "--augment-cache", "4", "--out", "{O}"], "give it --jitter N", 2),
    case("augment-cache-too-many", "more cached views than a jitter has shifts", &["distill", "--teacher", "{M}", "--jitter", "1", "--augment-cache", "12", "--out", "{O}"], "from 2 to 9 views", 2),
    case("augment-cache-mixup", "--augment-cache with --mixup, whose blends no cache holds", &["distill", "--teacher", "{M}", "--jitter", "1", "--mixup", "0.2", "--augment-cache", "4", "--out", "{O}"], "only a live teacher", 2),
    case("mixup-negative", "a negative mixup parameter", &["train", "--mixup", "-1", "--out", "{O}"], "--mixup must be 0", 2),
    case("bias-adjust-word", "--bias-adjust of an unknown word", &["distill", "--teacher", "{M}", "--bias-adjust", "maybe", "--out", "{O}"], "must be auto, none or a number", 2),
    case("bias-without-validation", "a bias adjustment with no validation split", &["distill", "--teacher", "{M}", "--omit-classes", "1", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "0"], "needs a validation split", 2),
    case("validation-too-large", "a validation split as large as the data", &["train", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "60"], "leaves no training example", 2),
    case("train-size-zero", "--train-size 0", &["train", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6", "--train-size", "0"], "must be at least 1", 2),
    case("sweep-without-validation", "a sweep with no validation split", &["sweep", "--teacher", "{M}", "--out", "{O}", "--validation-size", "0"], "judges its settings on validation errors", 2),
    case("soften-index", "soften --index past the split", &["soften", "{M}", "--index", "999", "--data-dir", "{T}"], "out of range", 2),
    case("soften-class", "soften --class the data lacks", &["soften", "{M}", "--class", "9", "--data-dir", "{T}"], "no image of class 9", 2),
    case("soften-temperature", "soften --temperatures 0", &["soften", "{M}", "--index", "0", "--temperatures", "0", "--data-dir", "{T}"], "--temperature must be", 2),
    case("ensemble-with-teacher", "--teacher with --experiment ensemble", &["reproduce", "--experiment", "ensemble", "--teacher", "{M}", "--out", "{O}"], "cannot be combined", 2),
    case("summarize-not-a-run", "summarize a directory without report.json", &["summarize", "{O}"], "no report.json", 2),
    case("shard-out-of-range", "soft-targets --shard past its count", &["soft-targets", "--teacher", "{M}", "--shard", "4/3", "--out", "{O}"], "expected I/N with 1 <= I <= N", 2),
    case("loss-unknown", "--loss of an unknown kind", &["distill", "--teacher", "{M}", "--loss", "crd", "--out", "{O}"], "must be kd, dkd or dist", 2),
    case("loss-standardize-dist", "--logit-standardize with --loss dist", &["distill", "--teacher", "{M}", "--loss", "dist", "--logit-standardize", "--out", "{O}"], "modifies kd and dkd", 2),
    case("kd-beta", "--beta with --loss kd, which has no beta", &["distill", "--teacher", "{M}", "--beta", "2", "--out", "{O}"], "--beta has no effect with --loss kd", 2),
    case("kd-gamma", "--gamma with --loss kd", &["distill", "--teacher", "{M}", "--loss", "kd", "--gamma", "2", "--out", "{O}"], "--gamma has no effect with --loss kd", 2),
    case("kd-dkd-warmup", "--dkd-warmup with --loss kd", &["distill", "--teacher", "{M}", "--dkd-warmup", "5", "--out", "{O}"], "--dkd-warmup has no effect with --loss kd", 2),
    case("kd-ce-weight", "--ce-weight with --loss kd, whose label weight is 1 - alpha", &["distill", "--teacher", "{M}", "--ce-weight", "0.5", "--out", "{O}"], "--ce-weight has no effect with --loss kd", 2),
    case("dkd-gamma", "--gamma with --loss dkd", &["distill", "--teacher", "{M}", "--loss", "dkd", "--gamma", "2", "--out", "{O}"], "--gamma has no effect with --loss dkd", 2),
    case("dist-alpha", "--alpha with --loss dist", &["distill", "--teacher", "{M}", "--loss", "dist", "--alpha", "0.5", "--out", "{O}"], "--alpha has no effect with --loss dist", 2),
    case("dist-dkd-warmup", "--dkd-warmup with --loss dist", &["distill", "--teacher", "{M}", "--loss", "dist", "--dkd-warmup", "5", "--out", "{O}"], "--dkd-warmup has no effect with --loss dist", 2),
    case("denormals-word", "DISTILL_DENORMALS of an unknown word", &["DISTILL_DENORMALS=off", "train", "--out", "{O}"], "must be flush or keep", 2),
    case("loss-warmup-zero", "--dkd-warmup 0", &["distill", "--teacher", "{M}", "--loss", "dkd", "--dkd-warmup", "0", "--out", "{O}"], "--dkd-warmup must be at least 1", 2),
    case("loss-negative-beta", "--beta -1", &["distill", "--teacher", "{M}", "--loss", "dkd", "--beta", "-1", "--out", "{O}"], "beta must be a finite number >= 0", 2),
    case("input-norm-odd", "--input-norm with one number", &["eval", "{M}", "--data-dir", "{T}", "--input-norm", "0.5"], "needs an even number of values", 2),
    case("input-norm-channels", "--input-norm for 2 channels on 1-channel images", &["eval", "{D}/m.onnx", "--data-dir", "{T}", "--input-norm", "0.1,0.2,0.3,0.4"], "gives 2 channels but the images have 1", 2),
    case("teacher-outputs-word", "--teacher-outputs of an unknown kind", &["eval", "{M}", "--data-dir", "{T}", "--teacher-outputs", "softmax"], "--teacher-outputs must be auto, logits or probs", 2),
    case("export-no-format", "export without --onnx or --torch", &["export", "{M}"], "required arguments were not provided", 2),
    case("bench-tiny", "bench --epoch-examples below one batch", &["bench", "--epoch-examples", "10", "--data-dir", "{T}"], "at least 128", 2),
    case("budget-negative", "reproduce --budget below 0", &["reproduce", "--budget", "-1", "--out", "{O}"], "--budget must be a positive number of minutes", 2),
    case("alpha-auto-dkd", "distill --alpha auto with a loss other than kd", &["distill", "--teacher", "{M}", "--loss", "dkd", "--alpha", "auto", "--out", "{O}"], "--alpha auto chooses kd's soft-target weight", 2),
    case("auto-without-validation", "reproduce --temperature auto with no validation split", &["reproduce", "--preset", "smoke", "--temperature", "auto", "--validation-size", "0", "--data-dir", "{T}", "--out", "{O}"], "needs a validation split", 2),
    case("temperature-word", "reproduce --temperature neither a number nor auto", &["reproduce", "--temperature", "warm", "--out", "{O}"], "must be a number or auto, got \"warm\"", 2),
    case("bench-only", "bench --only an unknown figure", &["bench", "--only", "teacher_step", "--data-dir", "{T}"], "--only names an unknown figure \"teacher_step\"", 2),
    // Bad data: exit 3.
    case("data-missing-dir", "a data directory that does not exist", &["train", "--out", "{O}", "--data-dir", "/no/such/dir"], "does not exist", 3),
    case("data-missing-file", "a data directory without the test images", &["train", "--out", "{O}", "--data-dir", "{D}"], "missing file: neither t10k-images-idx3-ubyte", 3),
    case("data-truncated", "a label file shorter than its header says", &["train", "--out", "{O}", "--data-dir", "{D}"], "truncated", 3),
    case("data-bad-magic", "an image file with a foreign magic number", &["train", "--out", "{O}", "--data-dir", "{D}"], "bad magic number", 3),
    case("data-wrong-rank", "labels where images belong", &["train", "--out", "{O}", "--data-dir", "{D}"], "expected an image file", 3),
    case("data-not-gzip", "a .gz file that is not gzip", &["train", "--out", "{O}", "--data-dir", "{D}"], "not gzip", 3),
    case("data-corrupt-gzip", "a gzip file cut in half", &["train", "--out", "{O}", "--data-dir", "{D}"], "corrupt or truncated gzip stream", 3),
    case("data-gzip-claims-too-much", "a gzip file whose header claims more than it can hold", &["train", "--out", "{O}", "--data-dir", "{D}"], "more data than a", 3),
    case("data-count-mismatch", "more labels than images", &["train", "--out", "{O}", "--data-dir", "{D}"], "images but", 3),
    case("data-label-range", "a test label beyond the training classes", &["train", "--out", "{O}", "--data-dir", "{D}"], "out of range", 3),
    case("data-one-class", "training labels of a single class", &["train", "--out", "{O}", "--data-dir", "{D}"], "a single class", 3),
    case("data-size-mismatch", "test images of another size than the training images", &["train", "--out", "{O}", "--data-dir", "{D}"], "test images are 2x2", 3),
    case("data-file-not-npz", "--data naming a file that is not an .npz", &["train", "--out", "{O}", "--data", "{D}/notes.txt"], "is a file but not an .npz", 3),
    case("npz-not-zip", "an .npz that is not a zip archive", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "not a valid .npz (zip) file", 3),
    case("npz-missing-key", "an .npz without y_test", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "has no array \"y_test\"", 3),
    case("npz-count-mismatch", "an .npz with fewer labels than images", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "x_train holds 60 images but y_train holds 59 labels", 3),
    case("npz-flat-images", "an .npz whose x_train is flat rows (a table) but x_test images", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "but x_train has 16 features per row", 3),
    case("npz-float-range", "float images with a value above 1", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "is outside [0, 1]", 3),
    case("npz-negative-label", "a negative label", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "negative or too large", 3),
    case("npz-float-labels", "labels stored as floats", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "vector of integer labels", 3),
    case("npz-lying-shape", "an array whose header claims more than the archive holds", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "claims more data than the archive holds", 3),
    case("npz-test-size", "x_test of another image size than x_train", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "x_test images are 1x3x3 but x_train images are 1x4x4", 3),
    case("npz-label-range", "a test label beyond the training classes", &["train", "--out", "{O}", "--data", "{D}/d.npz"], "out of range", 3),
    case("folder-empty-class", "an image folder with an empty class folder", &["train", "--out", "{O}", "--data", "{D}"], "holds no .png or .jpg image", 3),
    case("folder-corrupt-image", "a .png that is not an image", &["train", "--out", "{O}", "--data", "{D}"], "not a readable image", 3),
    case("folder-size-mismatch", "an image of another size than the others", &["train", "--out", "{O}", "--data", "{D}"], "all images must have one size", 3),
    case("folder-unknown-test-class", "a test class that training lacks", &["train", "--out", "{O}", "--data", "{D}"], "is not among the training classes", 3),
    case("folder-one-class", "an image folder with a single class", &["train", "--out", "{O}", "--data", "{D}"], "classification needs at least two", 3),
    // Bad models: exit 4.
    case("model-missing", "eval of a path with no model", &["eval", "/no/such/model"], "does not exist", 4),
    case("model-garbage", "a model.safetensors that is not safetensors", &["eval", "{D}"], "not a safetensors file", 4),
    case("model-interrupted", "a model directory whose training did not finish", &["eval", "{D}"], "looks interrupted", 4),
    case("model-altered", "weights changed after training finished", &["eval", "{D}"], "changed after training finished", 4),
    case("teacher-file", "--teacher given as the weights file", &["distill", "--teacher", "{M}/model.safetensors", "--out", "{O}"], "not a file inside a model directory", 4),
    case("teacher-classes", "a teacher with another class count than the data", &["distill", "--teacher", "{M}", "--out", "{O}", "--data-dir", "{D}", "--validation-size", "6"], "classes", 4),
    case("model-input-size", "eval of a model on images of another size", &["eval", "{M}", "--data-dir", "{D}", "--validation-size", "6"], "values each", 4),
    case("ensemble-manifest", "an ensemble.json that does not parse", &["eval", "{D}"], "ensemble manifest does not parse", 4),
    case("ensemble-mismatch", "ensemble members of different class counts", &["ensemble", "--member", "{M}", "--member", "{D}", "--out", "{O}"], "ensemble member 2", 4),
    case("onnx-not-onnx", "an .onnx file that is not ONNX", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "not an ONNX model", 4),
    case("onnx-truncated", "an ONNX file cut short", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "or a truncated one", 4),
    case("onnx-unsupported-op", "an ONNX operator tract lacks", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "operator DistillNoSuchOp", 4),
    case("onnx-input-size", "an ONNX model for images of another size", &["eval", "{D}/m.onnx", "--data-dir", "{D}"], "has shape [N, 16] but the data's 1x5x5 images give [N, 25]", 4),
    case("onnx-rank", "an ONNX input of rank 5", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "has rank 5", 4),
    case("onnx-classes", "an ONNX teacher with another class count than the data", &["distill", "--teacher", "{D}/m.onnx", "--out", "{O}", "--data-dir", "{D}", "--validation-size", "6"], "the teacher has 3 classes but the dataset", 4),
    case("onnx-external-missing", "an ONNX file whose external-data file is missing", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "external-data file", 4),
    case("onnx-two-inputs", "an ONNX model with two inputs", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "it takes 2 inputs", 4),
    case("onnx-not-probs", "--teacher-outputs probs for a model that gives logits", &["eval", "{D}/m.onnx", "--data-dir", "{T}", "--teacher-outputs", "probs"], "not a probability", 4),
    case("shards-incomplete", "a cache directory missing shard 2 of 3", &["distill", "--teacher", "{M}", "--cache-dir", "{D}/cache", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "0"], "shard 2 of 3 (rows 60..60) is missing", 4),
    case("shards-other-teacher", "a cache directory of shards made by another teacher", &["distill", "--teacher", "{M}", "--cache-dir", "{D}/cache", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "0"], "is a soft-target shard of another teacher", 4),
    case("onnx-runtime-unknown", "DISTILL_ONNX_RUNTIME naming no runtime", &["DISTILL_ONNX_RUNTIME=ort", "eval", "{D}/m.onnx", "--data-dir", "{T}"], "takes tract (the default) or onnxruntime", 2),
    case("onnx-runtime-unbuilt", "DISTILL_ONNX_RUNTIME=onnxruntime in a build without the ort feature", &["DISTILL_ONNX_RUNTIME=onnxruntime", "eval", "{D}/m.onnx", "--data-dir", "{T}"], "needs distill built with the cargo feature `ort`", 2),
    case("onnx-export-ensemble", "export of an ensemble", &["export", "{D}", "--onnx", "{O}.onnx"], "only a single trained network", 4),
    // Input and output: exit 5.
    case("out-under-a-file", "--out inside a plain file", &["train", "--out", "{F}/model", "--data-dir", "{T}", "--validation-size", "6", "--epochs", "1"], "creating directory", 5),
    case("report-not-json", "summarize a report.json that is not JSON", &["summarize", "{D}"], "report.json", 5),
    // Training that diverges, or a model whose outputs are not finite: exit 6.
    case("onnx-non-finite", "an ONNX model that outputs NaN", &["eval", "{D}/m.onnx", "--data-dir", "{T}"], "output not finite", 6),
    case("diverged", "a learning rate of 1e30", &["train", "--out", "{O}", "--lr", "1e30", "--model", "mlp:8", "--data-dir", "{T}", "--validation-size", "6", "--epochs", "2"], "training diverged", 6),
    // Another process at work on the same file: exit 7.
    case("shard-two-writers", "a shard another process is writing", &["soft-targets", "--teacher", "{M}", "--shard", "1/1", "--out", "{D}/cache", "--data-dir", "{T}", "--validation-size", "0"], "is being written by another distill process", 7),
];

/// Builds the data directory (or model directory) case `id` needs in `dir`.
fn prepare(id: &str, dir: &Path, model: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    if id.starts_with("table-") {
        return crate::errors_tables::prepare(id, dir);
    }
    let file = |name: &str| dir.join(name);
    let idx = |name: &str, dims: &[u32], data: &[u8]| write_idx(&file(name), dims, data);
    let gzip = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    if id.starts_with("data-") && id != "data-missing-dir" {
        tiny_dataset(dir, 3, 60);
    }
    match id {
        "data-missing-file" => std::fs::remove_file(file("t10k-images-idx3-ubyte")).unwrap(),
        "data-truncated" => std::fs::write(
            file("t10k-labels-idx1-ubyte"),
            [0, 0, 8, 1, 0, 0, 0, 60, 1, 2],
        )
        .unwrap(),
        "data-bad-magic" => {
            std::fs::write(file("train-images-idx3-ubyte"), [1, 2, 8, 3, 0, 0, 0, 1]).unwrap()
        }
        "data-wrong-rank" => idx("train-images-idx3-ubyte", &[60], &[0; 60]),
        "data-not-gzip" => {
            std::fs::remove_file(file("t10k-labels-idx1-ubyte")).unwrap();
            std::fs::write(file("t10k-labels-idx1-ubyte.gz"), b"plain").unwrap();
        }
        "data-corrupt-gzip" | "data-gzip-claims-too-much" => {
            let name = "train-images-idx3-ubyte";
            let raw = std::fs::read(file(name)).unwrap();
            std::fs::remove_file(file(name)).unwrap();
            let gz = if id == "data-corrupt-gzip" {
                let g = gzip(&raw);
                g[..g.len() / 2].to_vec()
            } else {
                let mut header = raw[..16].to_vec();
                header[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
                gzip(&header)
            };
            std::fs::write(file(&format!("{name}.gz")), gz).unwrap();
        }
        "data-count-mismatch" => idx("train-labels-idx1-ubyte", &[61], &[0; 61]),
        "data-label-range" => idx("t10k-labels-idx1-ubyte", &[60], &[5; 60]),
        "data-one-class" => idx("train-labels-idx1-ubyte", &[60], &[0; 60]),
        "data-size-mismatch" => idx("t10k-images-idx3-ubyte", &[60, 2, 2], &[0; 240]),
        "teacher-classes" => tiny_dataset(dir, 5, 60),
        "model-input-size" => {
            let labels: Vec<u8> = (0..60).map(|i| (i % 3) as u8).collect();
            for (images, labels_name) in [
                ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
            ] {
                idx(images, &[60, 5, 5], &[9; 1500]);
                idx(labels_name, &[60], &labels);
            }
        }
        "model-garbage" => {
            std::fs::write(file("model.safetensors"), b"garbage").unwrap();
            distill::model::mark_complete(dir, None).unwrap();
        }
        "model-interrupted" | "model-altered" => {
            std::fs::copy(model.join("model.safetensors"), file("model.safetensors")).unwrap();
            if id == "model-altered" {
                std::fs::copy(model.join("complete.json"), file("complete.json")).unwrap();
                let mut b = std::fs::read(file("model.safetensors")).unwrap();
                let n = b.len();
                b[n - 1] ^= 1;
                std::fs::write(file("model.safetensors"), b).unwrap();
            }
        }
        "ensemble-manifest" => std::fs::write(file("ensemble.json"), b"{ not json").unwrap(),
        "onnx-not-onnx" => {
            std::fs::write(file("m.onnx"), b"\x08\x07not protobuf \xff\xff").unwrap()
        }
        "onnx-export-ensemble" => {
            let o = distill(&[
                "ensemble",
                "--member",
                model.to_str().unwrap(),
                "--member",
                model.to_str().unwrap(),
                "--out",
                dir.to_str().unwrap(),
                "--data-dir",
                dir.parent().unwrap().join("tiny").to_str().unwrap(),
                "--validation-size",
                "6",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        _ if id.starts_with("onnx-") || id == "input-norm-channels" => onnx_case(id, dir, model),
        _ if id.starts_with("shards-") || id == "shard-two-writers" => shard_case(id, dir, model),
        "ensemble-mismatch" => {
            let data = dir.join("data5");
            tiny_dataset(
                &std::fs::create_dir_all(&data)
                    .map(|()| data.clone())
                    .unwrap(),
                5,
                60,
            );
            let o = distill(&[
                "train",
                "--model",
                "mlp:4",
                "--out",
                dir.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--validation-size",
                "6",
                "--epochs",
                "1",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        "report-not-json" => std::fs::write(file("report.json"), b"not json").unwrap(),
        "data-file-not-npz" => std::fs::write(file("notes.txt"), b"hello").unwrap(),
        "npz-not-zip" => std::fs::write(file("d.npz"), b"PK but not really").unwrap(),
        _ if id.starts_with("npz-") => {
            let images = |n: u64, side: u64| {
                npy::<u8>(&[n, side, side], &vec![7; (n * side * side) as usize])
            };
            let labels =
                |n: u64| npy::<u8>(&[n], &(0..n).map(|i| (i % 3) as u8).collect::<Vec<_>>());
            let mut entries = vec![
                ("x_train", images(60, 4)),
                ("y_train", labels(60)),
                ("x_test", images(20, 4)),
                ("y_test", labels(20)),
            ];
            match id {
                "npz-missing-key" => {
                    entries.pop();
                }
                "npz-count-mismatch" => entries[1].1 = labels(59),
                "npz-flat-images" => entries[0].1 = npy::<u8>(&[60, 16], &[7; 960]),
                "npz-float-range" => entries[0].1 = npy::<f32>(&[60, 4, 4], &[2.0; 960]),
                "npz-negative-label" => entries[1].1 = npy::<i64>(&[60], &[-1; 60]),
                "npz-float-labels" => entries[1].1 = npy::<f32>(&[60], &[0.0; 60]),
                "npz-lying-shape" => {
                    // An .npy header (format 1.0) for a 1,000,000,000 x 4 x 4 array of
                    // bytes, over 960 bytes of data.
                    let mut dict =
                        "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 4, 4), }"
                            .to_string();
                    while !(10 + dict.len() + 1).is_multiple_of(64) {
                        dict.push(' ');
                    }
                    dict.push('\n');
                    let mut lie = b"\x93NUMPY\x01\x00".to_vec();
                    lie.extend((dict.len() as u16).to_le_bytes());
                    lie.extend(dict.as_bytes());
                    lie.extend([7u8; 960]);
                    entries[0].1 = lie;
                }
                "npz-test-size" => entries[2].1 = images(20, 3),
                "npz-label-range" => entries[3].1 = npy::<u8>(&[20], &[9; 20]),
                _ => {}
            }
            write_npz(&file("d.npz"), &entries);
        }
        _ if id.starts_with("folder-") => {
            let png = |class: &str, split: &str, name: &str, side: u32| {
                let d = dir.join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                image::GrayImage::from_pixel(side, side, image::Luma([9]))
                    .save(d.join(name))
                    .unwrap();
            };
            let classes: &[&str] = if id == "folder-one-class" {
                &["a"]
            } else {
                &["a", "b"]
            };
            for c in classes {
                for split in ["train", "test"] {
                    png(c, split, "0.png", 4);
                    png(c, split, "1.png", 4);
                }
            }
            match id {
                "folder-empty-class" => std::fs::create_dir_all(dir.join("train/c")).unwrap(),
                "folder-corrupt-image" => {
                    std::fs::write(dir.join("train/b/2.png"), b"not a png").unwrap()
                }
                "folder-size-mismatch" => png("b", "train", "2.png", 5),
                "folder-unknown-test-class" => png("z", "test", "0.png", 4),
                _ => {}
            }
        }
        _ => {}
    }
}

/// Writes `dir/m.onnx` for ONNX case `id`: the exported model of `model`, broken as `id` says.
fn onnx_case(id: &str, dir: &Path, model: &Path) {
    use distill_pb::*;
    let m = dir.join("m.onnx");
    let o = distill(&[
        "export",
        model.to_str().unwrap(),
        "--onnx",
        m.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let float_bytes = |v: f32, n: usize| v.to_le_bytes().repeat(n);
    match id {
        "onnx-truncated" => {
            let b = std::fs::read(&m).unwrap();
            std::fs::write(&m, &b[..b.len() * 6 / 10]).unwrap();
        }
        "onnx-input-size" => {
            let labels: Vec<u8> = (0..60).map(|i| (i % 3) as u8).collect();
            for (images, labels_name) in [
                ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
            ] {
                write_idx(&dir.join(images), &[60, 5, 5], &[9; 1500]);
                write_idx(&dir.join(labels_name), &[60], &labels);
            }
        }
        "onnx-classes" => tiny_dataset(dir, 5, 60),
        _ => edit_onnx(&m, &m, |p| {
            let g = p.graph.as_mut().unwrap();
            match id {
                "onnx-unsupported-op" => g.node[1].op_type = "DistillNoSuchOp".into(),
                "onnx-rank" => {
                    let Some(type_proto::Value::TensorType(t)) =
                        g.input[0].r#type.as_mut().unwrap().value.as_mut()
                    else {
                        unreachable!()
                    };
                    let shape = t.shape.as_mut().unwrap();
                    let d = shape.dim[1].clone();
                    shape.dim.extend([d.clone(), d.clone(), d]);
                }
                "onnx-external-missing" => {
                    let t = &mut g.initializer[0];
                    t.raw_data.clear();
                    t.data_location = Some(tensor_proto::DataLocation::External as i32);
                    t.external_data = vec![StringStringEntryProto {
                        key: "location".into(),
                        value: "weights.bin".into(),
                    }];
                }
                "onnx-two-inputs" => {
                    let mut extra = g.input[0].clone();
                    extra.name = "extra".into();
                    g.input.push(extra);
                }
                "onnx-non-finite" | "onnx-not-probs" => {
                    let bias = g.initializer.last_mut().unwrap();
                    let n = bias.raw_data.len() / 4;
                    let v = if id == "onnx-non-finite" {
                        f32::NAN
                    } else {
                        5.0
                    };
                    bias.raw_data = float_bytes(v, n);
                }
                _ => {}
            }
        }),
    }
}

/// Shard locks the test holds while a case runs, as a second writer would.
static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// Writes `dir/cache` for shard case `id`: shards of `model` (or of another teacher), one
/// missing, or one whose lock this process holds.
fn shard_case(id: &str, dir: &Path, model: &Path) {
    let tiny = dir.parent().unwrap().join("tiny");
    let cache = dir.join("cache");
    let mut teacher = model.to_path_buf();
    if id == "shards-other-teacher" {
        teacher = dir.join("other");
        let o = distill(
            &[
                "train",
                "--model",
                "mlp:4",
                "--out",
                teacher.to_str().unwrap(),
            ]
            .into_iter()
            .chain(T.iter().map(|a| {
                if *a == "{T}" {
                    tiny.to_str().unwrap()
                } else {
                    *a
                }
            }))
            .collect::<Vec<_>>(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let shards: &[&str] = match id {
        "shards-incomplete" => &["1/3", "3/3"],
        "shard-two-writers" => &["1/1"],
        _ => &["1/3", "2/3", "3/3"],
    };
    for shard in shards {
        let o = distill(&[
            "soft-targets",
            "--teacher",
            teacher.to_str().unwrap(),
            "--shard",
            shard,
            "--out",
            cache.to_str().unwrap(),
            "--data-dir",
            tiny.to_str().unwrap(),
            "--validation-size",
            "0",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    if id == "shard-two-writers" {
        let lock = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "lock"))
            .unwrap();
        let f = std::fs::File::open(lock).unwrap();
        f.try_lock().unwrap();
        HELD.lock().unwrap().push(f);
    }
}

/// Two rows equal but for their numbers, hashes and host names, which differ between machines
/// (a model's bits follow the CPU's vector units; a process id, each run): the words of a
/// message must match.
fn same_words(a: &str, b: &str) -> bool {
    fn mask(s: &str) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        for w in s.split_whitespace() {
            let after_host = words.last().is_some_and(|p| p == "host");
            let hexish = w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit());
            words.push(if after_host || hexish {
                "#".into()
            } else {
                // Each run of digits as one mark: a pid of 4 digits against one of 5.
                let mut masked = String::new();
                for c in w.chars() {
                    match c.is_ascii_digit() {
                        true if masked.ends_with('#') => {}
                        true => masked.push('#'),
                        false => masked.push(c),
                    }
                }
                masked
            });
        }
        words
    }
    mask(a) == mask(b)
}

fn message(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

#[test]
fn every_refused_input_is_named_with_its_exit_code() {
    let cases: Vec<&Case> = CASES.iter().chain(crate::errors_tables::CASES).collect();
    assert!(cases.len() >= 59, "{} cases", cases.len());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tiny");
    std::fs::create_dir_all(&data).unwrap();
    tiny_dataset(&data, 3, 60);
    let model = tmp.path().join("model");
    let mut args = vec![
        "train",
        "--model",
        "mlp:8",
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend(
        T.iter()
            .map(|a| a.replace("{T}", data.to_str().unwrap()))
            .map(|s| &*s.leak()),
    );
    let o = distill(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = tmp.path().join("plain-file");
    std::fs::write(&plain, b"x").unwrap();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    // Named by id, so that the paths in the messages stay put when cases are added.
    for &c in &cases {
        let dir = tmp.path().join(c.id);
        prepare(c.id, &dir, &model);
        let out = tmp.path().join(format!("out-{}", c.id));
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| {
                a.replace("{T}", data.to_str().unwrap())
                    .replace("{D}", dir.to_str().unwrap())
                    .replace("{M}", model.to_str().unwrap())
                    .replace("{O}", out.to_str().unwrap())
                    .replace("{F}", plain.to_str().unwrap())
            })
            .collect();
        // A leading `NAME=VALUE` sets an environment variable for the command.
        let (env, args): (Vec<&str>, Vec<&str>) = args
            .iter()
            .map(String::as_str)
            .partition(|a| a.starts_with("DISTILL_") && a.contains('='));
        let env: Vec<(&str, &str)> = env.iter().filter_map(|e| e.split_once('=')).collect();
        let o = distill_with_env(&args, &env);
        let err = stderr(&o);
        let code = o.status.code();
        if code != Some(c.code)
            || !err.contains(c.needle)
            || err.contains("panicked")
            || !err.starts_with("error:")
        {
            failures.push(format!("{}: exit {code:?}, stderr: {err}", c.id));
        }
        let shown = message(&err)
            .replace(tmp.path().to_str().unwrap(), "…")
            .replace('|', "\\|");
        let command = match c.args.split_first() {
            Some((env, rest)) if env.starts_with("DISTILL_") => {
                format!("{env} distill {}", rest.join(" "))
            }
            _ => format!("distill {}", c.args.join(" ")),
        };
        rows.push(format!(
            "| `{}` | {} | `{command}` | {} | {} |",
            c.id, c.input, shown, c.code
        ));
    }
    HELD.lock().unwrap().clear();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
    if std::env::var_os("DISTILL_WRITE_ERRORS_DOC").is_some() {
        let text = std::fs::read_to_string(&doc).unwrap_or_default();
        let head = text
            .split("\n| id |")
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string();
        let table = format!(
            "| id | input | command | message (paths shortened to …) | exit |\n| --- | --- | --- | --- | ---: |\n{}\n",
            rows.join("\n")
        );
        std::fs::write(&doc, format!("{head}\n\n{table}")).unwrap();
    }
    let text = std::fs::read_to_string(&doc).unwrap();
    // Whole rows, message included: the document cannot drift from what the binary prints.
    // Only what another machine or run prints differently is masked (see `same_words`).
    let stale: Vec<String> = cases
        .iter()
        .zip(&rows)
        .filter_map(|(c, printed)| {
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", c.id)));
            match row {
                Some(row) if same_words(row, printed) => None,
                Some(row) => Some(format!("documented: {row}\nprinted:    {printed}")),
                None => Some(format!("docs/errors.md has no row for {}", c.id)),
            }
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/errors.md differs from the binary (DISTILL_WRITE_ERRORS_DOC=1 rewrites it):\n{}",
        stale.join("\n")
    );
    let documented = text.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(documented, cases.len(), "docs/errors.md rows vs test cases");
}
