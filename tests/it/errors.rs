//! Every refused input, one table: the input, the message it must name, the exit code. The same
//! table is `docs/errors.md` (a test keeps the two in step; `DISTILL_WRITE_ERRORS_DOC=1`
//! rewrites the document from the messages the binary prints).

use std::path::Path;

use crate::common::{
    distill, distill_with_env, edit_onnx, npy, stderr, tiny_dataset, write_idx, write_npz,
};
use tract_onnx::pb as distill_pb;

#[path = "errors/cases.rs"]
mod cases;

use cases::CASES;
pub use cases::{Case, case};

const T: &[&str] = &[
    "--data-dir",
    "{T}",
    "--validation-size",
    "6",
    "--epochs",
    "1",
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
