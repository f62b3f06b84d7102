//! Teachers as other frameworks export them: PyTorch's default (dynamo) exporter, Keras through
//! tf2onnx, scikit-learn through skl2onnx; binary classifiers with one output among them. The files and onnxruntime's outputs for them are
//! committed under `tests/fixtures/exporters/` (`make.py` there made them), so distill must read
//! each file's layout and outputs by itself, with no option, and give onnxruntime's numbers.

use std::path::{Path, PathBuf};

use crate::common::{assert_clean_failure, distill, edit_onnx, stderr, write_idx};
use burn::tensor::{Device, Tensor, TensorData};
use distill::data::ImageShape;
use distill::model::{OnnxModel, OnnxOptions, Predictor, TeacherOutputs};
use tract_onnx::pb;

/// One committed model and what onnxruntime made of it.
struct Fixture {
    path: PathBuf,
    shape: ImageShape,
    /// Images, each C·H·W with channels outermost, as distill holds them.
    images: Vec<f32>,
    outputs: TeacherOutputs,
    /// onnxruntime's outputs for `images`: logits or probabilities as `outputs` says.
    expected: Vec<f32>,
}

fn fixture(name: &str) -> Fixture {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let floats = |key: &str| -> Vec<f32> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let s: Vec<usize> = json["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    Fixture {
        path: dir.join(format!("{name}.onnx")),
        shape: ImageShape {
            channels: s[0],
            height: s[1],
            width: s[2],
        },
        images: floats("images"),
        outputs: json["outputs"].as_str().unwrap().parse().unwrap(),
        expected: floats("expected"),
    }
}

/// Loads fixture `name` with the default options, checks what its outputs were taken for, and
/// compares its probabilities at T = 1 (and its logits, when it gives logits) with
/// onnxruntime's within 1e-5.
fn matches_onnxruntime(name: &str) {
    let f = fixture(name);
    let model = OnnxModel::load(&f.path, f.shape, OnnxOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(model.outputs(), f.outputs, "{name}: outputs taken for");
    let n = f.images.len() / f.shape.len();
    let classes = f.expected.len() / n;
    assert_eq!(model.classes(), classes, "{name}");
    let images = Tensor::<2>::from_data(
        TensorData::new(f.images.clone(), [n, f.shape.len()]),
        &Device::flex(),
    );
    let host = |t: Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
    let probs: Vec<f32> = host(model.log_probs(&images, 1.0).unwrap().exp());
    let want: Vec<f32> = match f.outputs {
        TeacherOutputs::Probs => f.expected.clone(),
        _ => {
            let logits = host(model.logits(&images).unwrap());
            let diff = largest_difference(&logits, &f.expected);
            assert!(diff <= 1e-5, "{name}: logits differ by {diff}");
            f.expected
                .chunks(classes)
                .flat_map(|row| {
                    let top = row.iter().copied().fold(f32::MIN, f32::max);
                    let sum: f32 = row.iter().map(|v| (v - top).exp()).sum();
                    row.iter().map(move |v| (v - top).exp() / sum)
                })
                .collect()
        }
    };
    let diff = largest_difference(&probs, &want);
    assert!(diff <= 1e-5, "{name}: probabilities differ by {diff}");
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}

#[test]
fn pytorchs_dynamo_export_with_its_own_batch_name_and_external_data() {
    matches_onnxruntime("torch_dynamo_cnn");
}

#[test]
fn a_pytorch_export_taking_n_h_w_and_ending_in_a_softmax() {
    matches_onnxruntime("torch_rank3_softmax");
}

#[test]
fn a_keras_cnn_taking_channels_last_rgb() {
    matches_onnxruntime("keras_cnn_nhwc");
}

#[test]
fn a_keras_mlp_ending_in_a_softmax() {
    matches_onnxruntime("keras_mlp_softmax");
}

#[test]
fn a_scikit_learn_model_whose_probabilities_follow_its_label() {
    matches_onnxruntime("sklearn_logreg");
}

#[test]
fn binary_classifiers_with_one_output_a_pytorch_logit_and_a_keras_sigmoid() {
    // [N] logits, read as [0, z]; [N, 1] sigmoid probabilities, read as [1 - p, p].
    matches_onnxruntime("torch_binary_logit");
    matches_onnxruntime("keras_binary_sigmoid");
}

#[test]
fn outputs_spelled_out_override_what_the_probe_says() {
    let f = fixture("keras_mlp_softmax");
    let options = OnnxOptions {
        outputs: TeacherOutputs::Logits,
        ..OnnxOptions::default()
    };
    let model = OnnxModel::load(&f.path, f.shape, options).unwrap();
    assert_eq!(model.outputs(), TeacherOutputs::Logits);
    let auto = OnnxModel::load(&f.path, f.shape, OnnxOptions::default()).unwrap();
    assert_ne!(
        model.identity(),
        auto.identity(),
        "the cache must tell them apart"
    );
}

#[test]
fn a_scikit_learn_zipmap_and_a_layout_that_fits_neither_are_refused_by_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let n = 12;
    let images: Vec<u8> = (0..n * 64).map(|i| ((i * 37) % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    for split in ["train", "t10k"] {
        let file = |kind: &str| data.join(format!("{split}-{kind}"));
        write_idx(&file("images-idx3-ubyte"), &[n, 8, 8], &images);
        write_idx(&file("labels-idx1-ubyte"), &[n], &labels);
    }
    let eval = |file: &str| {
        let model = dir.join(file);
        distill(&[
            "eval",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
    };
    let o = eval("sklearn_logreg_zipmap.onnx");
    assert_clean_failure(&o, "sklearn_logreg_zipmap.onnx");
    assert_clean_failure(&o, "zipmap=False");
    // The Keras CNN takes 8x8 RGB; these images are grayscale.
    let o = eval("keras_cnn_nhwc.onnx");
    assert_clean_failure(&o, "keras_cnn_nhwc.onnx");
    assert_clean_failure(&o, "[N, 8, 8, 3]");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

/// A copy of the scikit-learn fixture whose input is `elem_type` and cast to float inside the
/// graph (divided by 255 too for uint8), as exporters write models that take such pixels.
fn cast_input(dst: &Path, elem_type: pb::tensor_proto::DataType) {
    use pb::tensor_proto::DataType;
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters/sklearn_logreg.onnx");
    edit_onnx(&src, dst, |p| {
        let g = p.graph.as_mut().unwrap();
        let Some(pb::type_proto::Value::TensorType(t)) =
            g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            unreachable!()
        };
        t.elem_type = elem_type as i32;
        g.input[0].name = "raw".into();
        let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let mut cast = node("Cast", &["raw"], "as_float");
        cast.attribute = vec![pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: DataType::Float as i64,
            ..Default::default()
        }];
        let mut head = vec![cast];
        if elem_type == DataType::Uint8 {
            g.initializer.push(pb::TensorProto {
                name: "byte_max".into(),
                data_type: DataType::Float as i32,
                float_data: vec![255.0],
                ..Default::default()
            });
            head.push(node("Div", &["as_float", "byte_max"], "X"));
        } else {
            head[0].output = vec!["X".into()];
        }
        g.node.splice(0..0, head);
    });
}

#[test]
fn inputs_of_uint8_and_float64_take_the_same_pixels() {
    let f = fixture("sklearn_logreg");
    // Pixels that bytes give, as every dataset distill reads holds them.
    let bytes: Vec<f32> = f
        .images
        .iter()
        .map(|v| (v * 255.0).round() / 255.0)
        .collect();
    let n = bytes.len() / f.shape.len();
    let images =
        Tensor::<2>::from_data(TensorData::new(bytes, [n, f.shape.len()]), &Device::flex());
    let probs = |path: &Path| -> Vec<f32> {
        let m = OnnxModel::load(path, f.shape, OnnxOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        m.log_probs(&images, 1.0)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap()
    };
    let want = probs(&f.path);
    let tmp = tempfile::tempdir().unwrap();
    for (name, t) in [
        ("u8.onnx", pb::tensor_proto::DataType::Uint8),
        ("f64.onnx", pb::tensor_proto::DataType::Double),
    ] {
        let path = tmp.path().join(name);
        cast_input(&path, t);
        let diff = largest_difference(&probs(&path), &want);
        assert!(diff <= 1e-6, "{name}: {diff}");
    }
    // Bytes cannot be normalized.
    let options = OnnxOptions {
        input_norm: Some("0.5,0.5".parse().unwrap()),
        ..OnnxOptions::default()
    };
    let e = OnnxModel::load(&tmp.path().join("u8.onnx"), f.shape, options).unwrap_err();
    assert!(e.to_string().contains("uint8 pixels"), "{e}");
}

#[test]
fn the_inspection_commands_name_an_image_folders_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("folder");
    for split in ["train", "test"] {
        for (c, class) in ["cat", "dog", "eel"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..4u8 {
                let pixels: Vec<u8> = (0..64u8).map(|p| p.wrapping_mul(i + 3 * c as u8)).collect();
                let img = image::GrayImage::from_raw(8, 8, pixels).unwrap();
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters/sklearn_logreg.onnx");
    let run = |args: &[&str]| {
        let mut all = vec![
            args[0],
            model.to_str().unwrap(),
            "--data",
            root.to_str().unwrap(),
        ];
        all.extend(&args[1..]);
        let o = distill(&all);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let similarity = run(&["similarity"]);
    assert!(
        similarity.contains("classes: 0 = cat, 1 = dog, 2 = eel"),
        "{similarity}"
    );
    assert!(similarity.contains(" (dog) ~ "), "{similarity}");
    let soften = run(&["soften", "--index", "0"]);
    assert!(soften.contains("true class 0 (cat)"), "{soften}");
}
