//! Feature tables end to end: the same table as CSV, Parquet and `.npz` trains the same model
//! byte for byte; a student of a table, exported, takes raw features and gives `distill eval`'s
//! errors in onnxruntime; a tree-ensemble teacher distils through `distill distill` with MUNGE
//! rows, and `distill table` writes its size and speed table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

use crate::common::{distill, npy, python_check, stderr, write_npz};

const NAMES: [&str; 3] = ["amber", "blue", "crimson"];

/// 600 rows of 4 features on very different scales (so that standardization matters), the
/// class a noisy function of them. Row-major features and class indices.
fn table() -> (Vec<f64>, Vec<usize>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut s = 0x9e37_79b9_u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    for _ in 0..600 {
        let (a, b, c, d) = (next(), next(), next(), next());
        let row = [a * 1000.0, b * 0.01, c - 0.5, (d * 50.0).round()];
        let score = a + 2.0 * b - c + 0.3 * next();
        y.push(if score < 0.9 {
            0
        } else if score < 1.5 {
            1
        } else {
            2
        });
        x.extend(row);
    }
    (x, y)
}

/// Writes the table as `t.csv`, `t.parquet` and `t.npz` in `dir` (the first 480 rows train,
/// the rest test, for the `.npz`; the others hold the test rows out by --test-fraction).
fn write_formats(dir: &Path) -> [PathBuf; 2] {
    let (x, y) = table();
    let mut csv = String::from("a,b,c,d,label\n");
    for (row, &l) in x.chunks_exact(4).zip(&y) {
        csv += &format!("{},{},{},{},{}\n", row[0], row[1], row[2], row[3], NAMES[l]);
    }
    std::fs::write(dir.join("t.csv"), csv).unwrap();
    let column = |j: usize| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            x.iter().skip(j).step_by(4).copied(),
        ))
    };
    let labels: ArrayRef = Arc::new(StringArray::from_iter_values(y.iter().map(|&l| NAMES[l])));
    let batch = RecordBatch::try_from_iter(vec![
        ("a", column(0)),
        ("b", column(1)),
        ("c", column(2)),
        ("d", column(3)),
        ("label", labels),
    ])
    .unwrap();
    let file = std::fs::File::create(dir.join("t.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    [dir.join("t.csv"), dir.join("t.parquet")]
}

fn train(data: &Path, out: &Path) {
    let o = distill(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "mlp:16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "30",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn eval_json(model: &Path, data: &Path) -> serde_json::Value {
    let o = distill(&[
        "eval",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn csv_parquet_and_npz_of_one_table_train_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let [csv, parquet] = write_formats(tmp.path());
    // The .npz of the rows `--test-fraction` keeps for training and testing: read back from
    // the CSV's own split, so that all three hold the same rows in the same order.
    let ds = distill::data::load(&csv).unwrap();
    let f64s = |s: &distill::data::Split| -> Vec<f64> {
        s.feature_values()
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let labels =
        |s: &distill::data::Split| -> Vec<i64> { s.labels.iter().map(|&l| l as i64).collect() };
    let (n, m) = (ds.train.len() as u64, ds.test.len() as u64);
    let npz = tmp.path().join("t.npz");
    write_npz(
        &npz,
        &[
            ("x_train", npy::<f64>(&[n, 4], &f64s(&ds.train))),
            ("y_train", npy::<i64>(&[n], &labels(&ds.train))),
            ("x_test", npy::<f64>(&[m, 4], &f64s(&ds.test))),
            ("y_test", npy::<i64>(&[m], &labels(&ds.test))),
        ],
    );
    let mut weights = Vec::new();
    for (name, data) in [("csv", &csv), ("parquet", &parquet), ("npz", &npz)] {
        let out = tmp.path().join(format!("m-{name}"));
        train(data, &out);
        weights.push(std::fs::read(out.join("model.safetensors")).unwrap());
    }
    assert!(weights[0] == weights[1], "CSV and Parquet models differ");
    assert!(weights[0] == weights[2], "CSV and npz models differ");
    let e = eval_json(&tmp.path().join("m-csv"), &csv);
    let errors = e["errors"].as_u64().unwrap();
    assert!(
        errors < 30,
        "{errors} of 120 test errors: the table model did not learn"
    );
}

#[test]
#[cfg_attr(
    no_onnxruntime,
    ignore = "onnxruntime is not importable by the tests' Python (see README); install it and rebuild"
)]
fn an_exported_table_student_takes_raw_features_and_gives_evals_errors_in_onnxruntime() {
    let tmp = tempfile::tempdir().unwrap();
    let [csv, _] = write_formats(tmp.path());
    let model = tmp.path().join("m");
    train(&csv, &model);
    let onnx = tmp.path().join("m.onnx");
    let o = distill(&[
        "export",
        model.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = distill::data::load(&csv).unwrap();
    let (x, y) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
    let n = ds.test.len() as u64;
    std::fs::write(&x, npy::<f32>(&[n, 4], ds.test.feature_values().unwrap())).unwrap();
    let labels: Vec<i64> = ds.test.labels.iter().map(|&l| l as i64).collect();
    std::fs::write(&y, npy::<i64>(&[n], &labels)).unwrap();
    let v = python_check("onnx_check.py", &[&onnx, &x, &y]);
    let ours = eval_json(&model, &csv)["errors"].as_u64();
    assert_eq!(v["errors"].as_u64(), ours, "{v}");
    assert_eq!(v["input"], "features", "{v}");
    assert_eq!(v["shape"], serde_json::json!([n, 3]), "{v}");
}

#[test]
fn a_forest_teacher_distils_with_munge_rows_and_the_table_run_reports_size_and_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trees");
    // Iris-like rows the scikit-learn forest fixture (4 features, 3 classes) reads.
    let (x, y) = table();
    let mut csv = String::from("a,b,c,d,label\n");
    for (row, &l) in x.chunks_exact(4).zip(&y) {
        let iris = [
            4.5 + row[0] / 300.0,
            2.0 + row[1] * 150.0,
            1.0 + (row[2] + 0.5) * 5.0,
            row[3] / 20.0,
        ];
        csv += &format!("{},{},{},{},{l}\n", iris[0], iris[1], iris[2], iris[3]);
    }
    let data = tmp.path().join("iris-like.csv");
    std::fs::write(&data, csv).unwrap();
    let out = tmp.path().join("run");
    let o = distill(&[
        "table",
        "--data",
        data.to_str().unwrap(),
        "--teacher",
        fixtures.join("rf_iris.onnx").to_str().unwrap(),
        "--student",
        "mlp:8",
        "--temperatures",
        "1,2",
        "--synthetic",
        "munge:2",
        "--epochs",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = crate::common::report_of(&out);
    for name in ["teacher", "student", "distilled", "distilled_more"] {
        assert!(r["models"][name]["test_errors"].is_u64(), "{name}: {r}");
    }
    let notes = r["notes"].to_string();
    assert!(notes.contains("synthetic rows (MUNGE)"), "{notes}");
    let rows = r["size_speed"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let bytes = |i: usize| rows[i]["bytes"].as_u64().unwrap();
    assert_eq!(rows[0]["model"], "teacher");
    assert!(
        bytes(0) > 2 * bytes(1),
        "teacher {} bytes, student {}",
        bytes(0),
        bytes(1)
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("## Size and speed") && md.contains("4 features"),
        "{md}"
    );
}

#[test]
fn patience_keeps_the_best_epoch_on_validation_and_stops_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let [csv, _] = write_formats(tmp.path());
    let out = tmp.path().join("m");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--model",
            "mlp:16",
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--epochs",
            "60",
            "--patience",
            "3",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        distill(&args)
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let errors: Vec<u64> = lines
        .iter()
        .map(|m| m["validation_errors"].as_u64().unwrap())
        .collect();
    let best = errors.iter().copied().min().unwrap();
    let best_epoch = errors.iter().position(|&e| e == best).unwrap() + 1;
    assert!(lines.len() < 60, "never stopped: {errors:?}");
    assert_eq!(lines.len(), best_epoch + 3, "{errors:?}");
    // The model kept is the best epoch's: its validation errors are the best.
    let device = burn::tensor::Device::flex();
    let splits = distill::data::Splits::load(&csv, &Default::default(), None, None, None).unwrap();
    let net = distill::model::Network::load(&out, &device).unwrap();
    let e = distill::eval::evaluate(&net, &splits.validation, 3, &device).unwrap();
    assert_eq!(e.errors as u64, best, "{errors:?}");
    let o = run(&["--validation-size", "0"]);
    assert!(
        !o.status.success() && stderr(&o).contains("needs a validation split"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn temperature_auto_keeps_the_student_with_the_fewest_validation_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let [csv, _] = write_formats(tmp.path());
    let teacher = tmp.path().join("teacher");
    train(&csv, &teacher);
    let out = tmp.path().join("auto");
    let auto = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "distill",
            "--data",
            csv.to_str().unwrap(),
            "--teacher",
            teacher.to_str().unwrap(),
            "--student",
            "mlp:4",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--epochs",
            "5",
            "--temperature",
            "auto",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        distill(&args)
    };
    let o = auto(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let choice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("choice.json")).unwrap()).unwrap();
    let grid = choice["points"].as_array().unwrap();
    assert_eq!(grid.len(), 5, "{choice}");
    let errors: Vec<u64> = grid
        .iter()
        .map(|g| g["validation_errors"].as_u64().unwrap())
        .collect();
    let first_best = errors
        .iter()
        .position(|e| e == errors.iter().min().unwrap());
    assert_eq!(choice["chosen"].as_u64(), first_best.map(|i| i as u64));
    let chosen = grid[first_best.unwrap()]["temperature"].as_f64().unwrap();
    let kept = out.join("grid").join(format!("T{chosen}-a0.9"));
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(kept.join("model.safetensors")).unwrap()
    );
    let o = auto(&tmp.path().join("no-val"), &["--validation-size", "0"]);
    assert!(
        stderr(&o).contains("needs a validation split"),
        "{}",
        stderr(&o)
    );
    // With --alpha auto, 0.5 and 1 follow at the best T; the kept student is the grid's best.
    let both = tmp.path().join("both");
    let o = auto(&both, &["--alpha", "auto"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let choice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(both.join("choice.json")).unwrap()).unwrap();
    let points = choice["points"].as_array().unwrap();
    let alphas: Vec<f64> = points
        .iter()
        .map(|p| p["alpha"].as_f64().unwrap())
        .collect();
    assert_eq!(alphas.len(), 7, "{choice}");
    assert_eq!((alphas[5], alphas[6]), (0.5, 1.0), "{choice}");
    let kept = &points[choice["chosen"].as_u64().unwrap() as usize];
    let min = points
        .iter()
        .map(|p| p["validation_errors"].as_u64().unwrap())
        .min();
    assert_eq!(kept["validation_errors"].as_u64(), min, "{choice}");
}

/// Writes `train.csv` and `test.csv` of the table into `dir`, the test labels rotated by
/// `shift` classes (a test set that disagrees with the training rows).
fn write_split_dir(dir: &Path, shift: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let (x, y) = table();
    let mut parts = [
        String::from("a,b,c,d,label\n"),
        String::from("a,b,c,d,label\n"),
    ];
    for (i, (row, &l)) in x.chunks_exact(4).zip(&y).enumerate() {
        let (part, l) = match i < 480 {
            true => (0, l),
            false => (1, (l + shift) % 3),
        };
        parts[part] += &format!("{},{},{},{},{}\n", row[0], row[1], row[2], row[3], NAMES[l]);
    }
    std::fs::write(dir.join("train.csv"), &parts[0]).unwrap();
    std::fs::write(dir.join("test.csv"), &parts[1]).unwrap();
}

#[test]
fn no_choice_reads_the_test_set_temperature_grid_patience_and_munge_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = tmp.path().join("teacher");
    write_split_dir(&tmp.path().join("plain"), 0);
    train(&tmp.path().join("plain"), &teacher);
    let mut runs = Vec::new();
    for shift in [0, 1] {
        let data = tmp.path().join(format!("shift{shift}"));
        write_split_dir(&data, shift);
        let out = tmp.path().join(format!("run{shift}"));
        let o = distill(&[
            "table",
            "--data",
            data.to_str().unwrap(),
            "--teacher",
            teacher.to_str().unwrap(),
            "--student",
            "mlp:4",
            "--temperatures",
            "1,2,4",
            "--synthetic",
            "munge:1",
            "--epochs",
            "8",
            "--patience",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        runs.push(out);
    }
    let (a, b) = (
        crate::common::report_of(&runs[0]),
        crate::common::report_of(&runs[1]),
    );
    assert_eq!(
        a["findings"], b["findings"],
        "the temperatures chosen differ"
    );
    for name in ["student", "distilled", "distilled_more"] {
        assert_eq!(
            a["models"][name]["validation_errors"], b["models"][name]["validation_errors"],
            "{name}"
        );
        let dir = |r: &serde_json::Value| PathBuf::from(r["models"][name]["dir"].as_str().unwrap());
        assert_eq!(
            std::fs::read(dir(&a).join("model.safetensors")).unwrap(),
            std::fs::read(dir(&b).join("model.safetensors")).unwrap(),
            "{name}: the test labels changed the model kept"
        );
    }
    // The test set only reports: the same models, scored against other labels.
    let errors = |r: &serde_json::Value| r["models"]["student"]["test_errors"].as_u64().unwrap();
    assert_ne!(errors(&a), errors(&b));
}
