//! The native tree-ensemble evaluator against onnxruntime: every fixture in
//! `tests/fixtures/trees/` (made by `make.py` there) holds a model exported by skl2onnx or
//! onnxmltools, probe rows, and onnxruntime's probabilities for them. Plus the evaluator's
//! refusals: ZipMap outputs, labels, unknown operators and corrupted tree arrays.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use distill::model::TreeEnsemble;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tract_onnx::pb;

use crate::common::edit_onnx;

/// Every fixture: scikit-learn forests and boosted trees (skl2onnx), LightGBM and XGBoost
/// (onnxmltools), multi-class and binary, one pipeline with a scaler.
const FIXTURES: [&str; 11] = [
    "rf_iris",
    "extra_wine",
    "gb_synth",
    "hgb_synth",
    "scaler_rf_wine",
    "rf_binary_cancer",
    "gb_binary_cancer",
    "lgbm_synth",
    "lgbm_binary_cancer",
    "xgb_synth",
    "xgb_binary_cancer",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trees")
        .join(name)
}

/// A float32 `.npy` file's shape and values.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn load(path: &Path) -> TreeEnsemble {
    TreeEnsemble::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn probabilities_match_onnxruntime_on_every_fixture() {
    for name in FIXTURES {
        let model = load(&fixture(&format!("{name}.onnx")));
        let (xs, x) = read_npy(&fixture(&format!("{name}.x.npy")));
        let (ps, want) = read_npy(&fixture(&format!("{name}.p.npy")));
        assert_eq!(model.features(), xs[1], "{name}: features");
        assert_eq!(model.classes(), ps[1], "{name}: classes");
        assert_eq!(model.output_name(), "probabilities", "{name}");
        let (n, f, c) = (xs[0], xs[1], ps[1]);
        // The probe rows hold NaN, which sends every block through the tests as the file
        // states them; the rows without NaN, scored apart, take the canonical lockstep path.
        let clean: Vec<usize> = (0..n)
            .filter(|&i| x[i * f..(i + 1) * f].iter().all(|v| !v.is_nan()))
            .collect();
        assert!(clean.len() >= 16 && clean.len() < n, "{name}: probe rows");
        let pick = |v: &[f32], w: usize| -> Vec<f32> {
            clean
                .iter()
                .flat_map(|&i| v[i * w..(i + 1) * w].to_vec())
                .collect()
        };
        let runs = [
            (model.probabilities(&x, n).unwrap(), want.clone()),
            (
                model.probabilities(&pick(&x, f), clean.len()).unwrap(),
                pick(&want, c),
            ),
        ];
        for (got, want) in runs {
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{name}: {} trees, {} rows, max |distill - onnxruntime| = {worst:e}",
                model.trees(),
                got.len() / c
            );
            assert!(
                got.iter().all(|v| v.is_finite()),
                "{name}: non-finite output"
            );
            assert!(worst <= 1e-5, "{name}: differs from onnxruntime by {worst}");
        }
    }
}

/// Rows of `name`'s probe set without NaN, repeated with small shifts to `n` rows.
fn many_rows(name: &str, n: usize) -> (Vec<f32>, usize) {
    let (xs, x) = read_npy(&fixture(&format!("{name}.x.npy")));
    let f = xs[1];
    let x: Vec<f32> = x
        .chunks_exact(f)
        .filter(|r| r.iter().all(|v| !v.is_nan()))
        .flatten()
        .copied()
        .collect();
    let m = x.len() / f;
    let rows = (0..n)
        .flat_map(|i| {
            let r = &x[(i % m) * f..(i % m + 1) * f];
            r.iter().map(move |v| v * (1.0 + (i / m) as f32 * 1e-3))
        })
        .collect();
    (rows, f)
}

#[test]
fn thread_count_and_batching_do_not_change_bits() {
    for name in ["gb_synth", "hgb_synth", "rf_binary_cancer"] {
        let model = load(&fixture(&format!("{name}.onnx")));
        let n = 1000;
        let (rows, f) = many_rows(name, n);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| model.probabilities(&rows, n).unwrap())
        };
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let one = bits(run(1));
        for threads in [2, 3, 4] {
            assert_eq!(bits(run(threads)), one, "{name}: {threads} threads");
        }
        let single: Vec<f32> = (0..n)
            .flat_map(|i| model.probabilities(&rows[i * f..(i + 1) * f], 1).unwrap())
            .collect();
        assert_eq!(bits(single), one, "{name}: one row at a time");
    }
}

#[test]
fn wrong_row_length_is_refused() {
    let model = load(&fixture("rf_iris.onnx"));
    let e = model.probabilities(&[1.0; 7], 2).unwrap_err().to_string();
    assert!(e.contains("4 features"), "{e}");
    assert!(model.probabilities(&[], 0).unwrap().is_empty());
}

/// The tree node of a model.
fn trees(m: &mut pb::ModelProto) -> &mut pb::NodeProto {
    let g = m.graph.as_mut().unwrap();
    g.node
        .iter_mut()
        .find(|n| n.op_type == "TreeEnsembleClassifier")
        .unwrap()
}

fn attr<'a>(node: &'a mut pb::NodeProto, name: &str) -> &'a mut pb::AttributeProto {
    node.attribute.iter_mut().find(|a| a.name == name).unwrap()
}

/// The error `edit` makes loading `name` give.
fn refusal(name: &str, edit: impl FnOnce(&mut pb::ModelProto)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    edit_onnx(&fixture(&format!("{name}.onnx")), &path, edit);
    let e = TreeEnsemble::load(&path).unwrap_err().to_string();
    assert!(!e.contains('\n') && !e.contains("--"), "{e}");
    e
}

#[test]
fn zipmap_labels_and_unknown_operators_are_refused() {
    let e = refusal("rf_iris", crate::common::zipmap_probabilities);
    assert!(e.contains("ZipMap") && e.contains("zipmap=False"), "{e}");
    let e = TreeEnsemble::load_output(&fixture("rf_iris.onnx"), Some("label"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("label"), "{e}");
    let e = TreeEnsemble::load_output(&fixture("rf_iris.onnx"), Some("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no output named \"nope\""), "{e}");
    let e = refusal("gb_synth", |m| {
        let g = m.graph.as_mut().unwrap();
        g.node
            .iter_mut()
            .find(|n| n.op_type == "Identity")
            .unwrap()
            .op_type = "Softmax".into();
    });
    assert!(e.contains("operator Softmax"), "{e}");
}

#[test]
fn corrupted_tree_arrays_are_refused() {
    type Edit = fn(&mut pb::NodeProto);
    let cases: [(&str, Edit); 10] = [
        ("nodes_featureids has", |n| {
            attr(n, "nodes_featureids").ints.pop();
        }),
        ("does not exist", |n| {
            attr(n, "nodes_truenodeids").ints[0] = 9999
        }),
        ("reached twice", |n| {
            attr(n, "nodes_falsenodeids").ints[0] = 0
        }),
        ("read feature 4", |n| {
            attr(n, "nodes_featureids").ints[0] = 4
        }),
        ("reads feature -1", |n| {
            attr(n, "nodes_featureids").ints[0] = -1
        }),
        ("for class 3", |n| attr(n, "class_ids").ints[0] = 3),
        ("listed twice", |n| attr(n, "nodes_nodeids").ints[1] = 0),
        ("unknown node mode", |n| {
            attr(n, "nodes_modes").strings[0] = b"BRANCH_XX".to_vec()
        }),
        ("class_weights has", |n| {
            attr(n, "class_weights").floats.truncate(3);
        }),
        ("class labels", |n| {
            attr(n, "classlabels_int64s").ints.truncate(1)
        }),
    ];
    for (want, edit) in cases {
        let e = refusal("rf_iris", |m| edit(trees(m)));
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
    let e = refusal("gb_synth", |m| {
        attr(trees(m), "base_values").floats.pop();
    });
    assert!(e.contains("base_values has 3 entries"), "{e}");
}

/// Random edits of the tree arrays: entries set to nearby or extreme values, arrays cut short
/// or emptied. Loading and, where it loads, evaluating must answer without panicking.
#[test]
fn mutated_tree_arrays_never_panic() {
    const INTS: [&str; 8] = [
        "nodes_treeids",
        "nodes_nodeids",
        "nodes_featureids",
        "nodes_truenodeids",
        "nodes_falsenodeids",
        "class_treeids",
        "class_nodeids",
        "class_ids",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let mut rng = StdRng::seed_from_u64(39);
    let mut loaded = 0;
    for case in 0..600 {
        let name = FIXTURES[case % FIXTURES.len()];
        edit_onnx(&fixture(&format!("{name}.onnx")), &path, |m| {
            let node = trees(m);
            for _ in 0..rng.random_range(1..4) {
                let a = attr(node, INTS[rng.random_range(0..INTS.len())]);
                let len = a.ints.len();
                match rng.random_range(0..4) {
                    0 if len > 0 => a.ints.truncate(rng.random_range(0..len)),
                    1 if len > 0 => {
                        let v = [-1, 0, 1, 2, 40, i64::MAX, i64::MIN][rng.random_range(0..7)];
                        a.ints[rng.random_range(0..len)] = v;
                    }
                    _ if len > 0 => {
                        let i = rng.random_range(0..len);
                        a.ints[i] = a.ints[rng.random_range(0..len)];
                    }
                    _ => a.ints.clear(),
                }
            }
        });
        let run = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(model) = TreeEnsemble::load(&path) {
                let f = model.features();
                let mut rows = vec![0.5f32; 3 * f];
                rows[0] = f32::NAN;
                let p = model.probabilities(&rows, 3).unwrap();
                assert_eq!(p.len(), 3 * model.classes());
                return true;
            }
            false
        }));
        match run {
            Ok(ok) => loaded += usize::from(ok),
            Err(_) => panic!("case {case} ({name}) panicked"),
        }
    }
    eprintln!("600 mutated models, {loaded} still loaded and ran");
}
