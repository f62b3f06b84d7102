use std::fs::File;
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Float64Array, ListArray, RecordBatch, StringArray};

use super::*;
use crate::data::{ImageShape, Split};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err(path: &Path, options: &TableOptions) -> String {
    load_table(path, options).unwrap_err().to_string()
}

const SMALL: &str = "a,colour,class\n1.5,red,yes\n2,blue,no\n3,red,yes\n4,green,no\n5,blue,yes\n";

#[test]
fn a_csv_becomes_features_with_sorted_classes_and_one_hot_text() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.csv", SMALL);
    write(
        dir.path(),
        "test.csv",
        "a,colour,class\n7,green,no\n8,purple,yes\n",
    );
    let ds = load_table(dir.path(), &TableOptions::default()).unwrap();
    assert_eq!(ds.class_names.as_deref().unwrap(), ["no", "yes"]);
    let t = ds.table.as_ref().unwrap();
    assert_eq!(
        t.features,
        ["a", "colour=blue", "colour=green", "colour=red"]
    );
    assert_eq!(t.held_out, None);
    assert_eq!(ds.train.labels, [1, 0, 1, 0, 1]);
    assert_eq!(
        &ds.train.feature_values().unwrap()[..8],
        [1.5, 0., 0., 1., 2., 1., 0., 0.]
    );
    // An unseen category is all zeros.
    assert_eq!(
        ds.test.feature_values().unwrap(),
        [7., 0., 1., 0., 8., 0., 0., 0.]
    );
    assert_eq!(ds.shape, ImageShape::features(4));
}

#[test]
fn one_file_holds_out_a_stratified_seeded_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..100 {
        text += &format!("{i},{}\n", if i % 4 == 0 { "a" } else { "b" });
    }
    let p = write(dir.path(), "t.csv", &text);
    let ds = load_table(&p, &TableOptions::default()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (80, 20));
    assert_eq!(ds.test.class_counts(2), [5, 15]);
    assert_eq!(ds.table.as_ref().unwrap().held_out, Some(0.2));
    let again = load_table(&p, &TableOptions::default()).unwrap();
    assert_eq!(again.test, ds.test);
}

#[test]
fn refusals_name_the_row_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = TableOptions::default();
    let e = err(&write(d, "ragged.csv", "a,b,c\n1,2,x\n1,2\n"), &o);
    assert!(
        e.contains("row 2") && e.contains("2 fields") && e.contains("3"),
        "{e}"
    );
    let e = err(&write(d, "text.csv", "a,c\n1,x\noops,y\n"), &o);
    assert!(
        e.contains("row 2, column 'a'") && e.contains("'oops'"),
        "{e}"
    );
    let e = err(&write(d, "nan.csv", "a,c\n1,x\nNaN,y\n"), &o);
    assert!(
        e.contains("row 2, column 'a'") && e.contains("give impute mean"),
        "{e}"
    );
    let labelled = TableOptions {
        label: Some("target".into()),
        ..o.clone()
    };
    let e = err(&write(d, "nolabel.csv", "a,c\n1,x\n2,y\n"), &labelled);
    assert!(
        e.contains("no label column 'target'") && e.contains("a, c"),
        "{e}"
    );
    let e = err(&write(d, "const.csv", "a,c\n1,x\n1,y\n"), &o);
    assert!(e.contains("constant"), "{e}");
    let e = err(&write(d, "empty.csv", "a,c\n"), &o);
    assert!(e.contains("no rows"), "{e}");
    let refuse = TableOptions {
        strings: Strings::Refuse,
        ..o.clone()
    };
    let e = err(&write(d, "str.csv", SMALL), &refuse);
    assert!(e.contains("column 'colour'") && e.contains("'red'"), "{e}");
    let sub = tempfile::tempdir().unwrap();
    write(sub.path(), "train.csv", SMALL);
    write(sub.path(), "test.csv", "a,colour,class\n7,red,maybe\n");
    let e = err(sub.path(), &o);
    assert!(e.contains("row 1") && e.contains("'maybe'"), "{e}");
}

#[test]
fn impute_mean_replaces_missing_values_with_the_training_mean() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.csv", "a,b,c\n1,x,p\n3,,q\n,y,p\n");
    write(dir.path(), "test.csv", "a,b,c\nNA,x,q\n");
    let o = TableOptions {
        impute: Some(Impute::Mean),
        ..TableOptions::default()
    };
    let ds = load_table(dir.path(), &o).unwrap();
    assert_eq!(
        ds.train.feature_values().unwrap(),
        [1., 1., 0., 3., 0., 0., 2., 0., 1.]
    );
    assert_eq!(ds.test.feature_values().unwrap(), [2., 1., 0.]);
    assert_eq!(ds.table.unwrap().imputed, [("a".to_string(), 1, 2.0)]);
}

fn parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn csv_parquet_and_npz_of_one_table_give_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: Vec<(f64, f64, &str)> = (0..40)
        .map(|i| (i as f64 * 0.5, (i % 7) as f64, ["b", "a", "c"][i % 3]))
        .collect();
    let mut text = String::from("u,v,label\n");
    for (u, v, l) in &rows {
        text += &format!("{u},{v},{l}\n");
    }
    let csv = load_table(&write(d, "t.csv", &text), &TableOptions::default()).unwrap();
    let p = d.join("t.parquet");
    parquet(
        &p,
        vec![
            (
                "u",
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.0))) as _,
            ),
            (
                "v",
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))) as _,
            ),
        ],
    );
    let pq = load_table(&p, &TableOptions::default()).unwrap();
    assert_eq!((&pq.train, &pq.test), (&csv.train, &csv.test));
    let x = |s: &Split| {
        s.feature_values()
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let arrays = load_arrays(
        &d.join("t.npz"),
        2,
        (x(&csv.train), csv.train.labels.clone()),
        (x(&csv.test), csv.test.labels.clone()),
        &TableOptions::default(),
    )
    .unwrap();
    assert_eq!((&arrays.train, &arrays.test), (&csv.train, &csv.test));
}

#[test]
fn a_nested_parquet_column_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nested.parquet");
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(3)]),
    ]);
    parquet(
        &p,
        vec![
            ("tags", Arc::new(list) as _),
            ("label", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ],
    );
    let e = err(&p, &TableOptions::default());
    assert!(e.contains("column 'tags' is nested"), "{e}");
}

#[test]
fn standardization_is_fitted_per_feature_and_leaves_constants_alone() {
    let s = Standardize::fit(&[1.0, 5.0, 3.0, 5.0], 2);
    assert_eq!(s.mean, [2.0, 5.0]);
    assert_eq!(s.scale, [1.0, 1.0]);
    let s = Standardize::fit(&[0.0, 4.0], 1);
    assert_eq!((s.mean[0], s.scale[0]), (2.0, 0.5));
}
