//! The refused inputs of feature tables, run by `errors::every_refused_input_is_named_with_its_
//! exit_code` beside the others and documented with them in docs/errors.md. `{D}` is each case's
//! own directory, prepared by [`prepare`]: a CSV of iris-like rows (4 features, 3 classes) and
//! the scikit-learn forest fixture that takes them.

use std::path::Path;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

use crate::common::{edit_onnx, zipmap_probabilities};
use crate::errors::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case("table-nan", "a missing feature without --impute", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "row 5, column 'b': the value is missing", 3),
    case("table-ragged", "a CSV row with too few fields", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "has 3 fields but the header has 5", 3),
    case("table-text-in-number", "text in a numeric column", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "'1,5' is not a number", 3),
    case("table-no-label", "a --label column the table lacks", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--label", "species"], "has no label column 'species'", 3),
    case("table-text-refused", "a text column with --strings refuse", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--strings", "refuse"], "column 'colour' holds text", 3),
    case("table-constant", "a table whose rows are all alike", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "a constant table has nothing to learn", 3),
    case("table-empty", "a CSV with a header and no rows", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "the table has no rows", 3),
    case("table-unseen-label", "a test label that no training row has", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}"], "label 'z' does not occur in the training rows", 3),
    case("table-duplicate-column", "a header naming a column twice", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "names column 'a' twice", 3),
    case("table-nested-parquet", "a Parquet file with a nested column", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.parquet"], "column 'tags' is nested", 3),
    case("table-test-fraction", "--test-fraction 1.5", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--test-fraction", "1.5"], "the test fraction must be in (0, 1)", 2),
    case("table-jitter", "--jitter on a table", &["train", "--model", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--jitter", "2"], "a table has no pixels to shift", 2),
    case("table-cnn", "a CNN on a table", &["train", "--model", "cnn:4/8", "--out", "{O}", "--data", "{D}/t.csv"], "a CNN needs images", 2),
    case("table-munge-spec", "--synthetic of another kind than munge:K", &["distill", "--teacher", "{D}/rf.onnx", "--student", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--synthetic", "smote:2"], "--synthetic takes munge:K", 2),
    case("table-munge-images", "--synthetic on images", &["distill", "--teacher", "{M}", "--out", "{O}", "--data-dir", "{T}", "--validation-size", "6", "--synthetic", "munge:2"], "unlabelled and synthetic transfer rows are for tables", 2),
    case("table-zipmap", "a tree teacher whose probabilities are a ZipMap", &["distill", "--teacher", "{D}/rf.onnx", "--student", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "is a ZipMap", 4),
    case("table-teacher-features", "a tree teacher that reads another number of features", &["distill", "--teacher", "{D}/rf.onnx", "--student", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv"], "reads 4 features per row but the data has 3", 4),
    case("table-teacher-output", "--teacher-output naming no output", &["distill", "--teacher", "{D}/rf.onnx", "--student", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--teacher-output", "scores"], "no output named \"scores\"", 4),
    case("table-transfer-columns", "a --transfer file without a training column", &["distill", "--teacher", "{D}/rf.onnx", "--student", "mlp:4", "--out", "{O}", "--data", "{D}/t.csv", "--transfer", "{D}/more.csv"], "has no column 'd', which the training rows have", 3),
];

/// Iris-like rows: four numeric features and a class name, 30 rows.
fn rows(n: usize) -> String {
    let mut s = String::from("a,b,c,d,label\n");
    for i in 0..n {
        let x = i as f64;
        let class = ["setosa", "versicolor", "virginica"][i % 3];
        s += &format!(
            "{},{},{},{},{class}\n",
            4.0 + x * 0.1,
            3.0 + (i % 5) as f64 * 0.2,
            1.0 + (i % 3) as f64 * 2.0,
            0.2 + (i % 3) as f64
        );
    }
    s
}

/// Writes what case `id` reads into `dir`.
pub fn prepare(id: &str, dir: &Path) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees/rf_iris.onnx");
    let good = rows(30);
    write("t.csv", &good);
    std::fs::copy(&fixture, dir.join("rf.onnx")).unwrap();
    match id {
        "table-nan" => write("t.csv", &good.replacen("\n4.4,3.8,", "\n4.4,NA,", 1)),
        "table-ragged" => write("t.csv", &format!("{good}5,6,setosa\n")),
        "table-text-in-number" => write("t.csv", &format!("{good}\"1,5\",3,1,0.2,setosa\n")),
        "table-text-refused" => write("t.csv", "a,colour,label\n1,red,x\n2,blue,y\n3,red,x\n"),
        "table-constant" => write("t.csv", "a,b,label\n1,2,x\n1,2,y\n1,2,x\n1,2,y\n"),
        "table-empty" => write("t.csv", "a,b,label\n"),
        "table-unseen-label" => {
            write("train.csv", &good);
            write("test.csv", "a,b,c,d,label\n4,3,1,0.2,z\n");
        }
        "table-duplicate-column" => write("t.csv", "a,b,a,label\n1,2,3,x\n"),
        "table-nested-parquet" => nested_parquet(&dir.join("t.parquet")),
        "table-zipmap" => edit_onnx(&fixture, &dir.join("rf.onnx"), zipmap_probabilities),
        "table-teacher-features" => {
            let three: String = good
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    format!("{},{},{},{}\n", f[0], f[1], f[2], f[4])
                })
                .collect();
            write("t.csv", &three);
        }
        "table-transfer-columns" => write("more.csv", "a,b,c\n1,2,3\n"),
        _ => {}
    }
}

fn nested_parquet(path: &Path) {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(3)]),
    ]);
    let batch = RecordBatch::try_from_iter(vec![
        ("tags", Arc::new(list) as ArrayRef),
        (
            "label",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}
