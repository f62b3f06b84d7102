#!/usr/bin/env python3
"""Tree-ensemble teachers for `distill` on a feature table: a random forest (scikit-learn) and a
boosted model (LightGBM) trained on the UCI letter-recognition table and exported to ONNX with
ZipMap off, as a user of scikit-learn would do it.

    python examples/tabular/train_teachers.py [DIR]     # default DIR: runs/tabular

Fetches the table first when DIR/letter/train.csv is missing (`bench/tables.py fetch letter DIR`:
Debian's r-cran-mlbench, 20,000 rows, 16 features, 26 classes, a stratified 20% test split),
then reads DIR/letter/train.csv and test.csv (features, then the class name in `label`) and
writes DIR/letter/letter-rf300.onnx (300 fully grown trees, about 250 MB), letter-lightgbm300.onnx
(300 rounds of 31 leaves per class) and teachers.json (accuracies, sizes, seconds).

Each model takes float32 [N, 16] in the CSV's column order as `input` and gives `label` and
`probabilities` [N, 26]; the classes are the label names in sorted order ("A".."Z"), the order
distill gives a table's classes. Both files are scored with onnxruntime before the script
ends. Needs numpy, pandas, scikit-learn, skl2onnx, lightgbm, onnxmltools and onnxruntime
(pip install numpy pandas scikit-learn skl2onnx lightgbm onnxmltools onnxruntime), and for the
fetch pyarrow, rdata and apt-get.
"""
import json
import pathlib
import subprocess
import sys
import time

import lightgbm
import numpy as np
import onnxruntime as ort
import pandas as pd
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SEED, TREES, THREADS = 0, 300, 2


def table(path, classes=None):
    """Features as float32 and each label's position among the sorted class names."""
    frame = pd.read_csv(path, dtype={"label": str})
    labels = frame.pop("label").to_numpy(str)
    classes = classes or sorted(set(labels.tolist()))
    return frame.to_numpy(np.float32), np.searchsorted(np.array(classes), labels), classes


def onnx_accuracy(path, x, y):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = sess.run(["probabilities"], {"input": x})[0]
    return float((probs.argmax(1) == y).mean())


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "runs" / "tabular")
    data = out / "letter"
    if not (data / "train.csv").exists():
        fetch = [sys.executable, str(ROOT / "bench" / "tables.py"), "fetch", "letter", str(out)]
        subprocess.run(fetch, check=True)
    x_train, y_train, classes = table(data / "train.csv")
    x_test, y_test, _ = table(data / "test.csv", classes)
    features = x_train.shape[1]
    print(f"{len(x_train)} train, {len(x_test)} test, {features} features, {len(classes)} classes")

    models = {
        "rf300": RandomForestClassifier(n_estimators=TREES, n_jobs=THREADS, random_state=SEED),
        "lightgbm300": lightgbm.LGBMClassifier(
            n_estimators=TREES, num_leaves=31, n_jobs=THREADS, random_state=SEED, verbose=-1
        ),
    }
    report = {}
    for name, model in models.items():
        t0 = time.time()
        model.fit(x_train, y_train)
        seconds = time.time() - t0
        if name.startswith("rf"):
            onx = convert_sklearn(
                model, initial_types=[("input", FloatTensorType([None, features]))],
                options={id(model): {"zipmap": False}}, target_opset={"": 15, "ai.onnx.ml": 3},
            )
        else:
            onx = convert_lightgbm(
                model, initial_types=[("input", MlFloat([None, features]))], zipmap=False,
                target_opset=15,
            )
        path = data / f"letter-{name}.onnx"
        path.write_bytes(onx.SerializeToString())
        del onx
        accuracy = float((model.predict(x_test) == y_test).mean())
        onnx_acc = onnx_accuracy(path, x_test, y_test)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; test accuracy {accuracy:.4f}, "
              f"onnxruntime {onnx_acc:.4f}; trained in {seconds:.1f} s")
        assert onnx_acc == accuracy, "the ONNX file does not predict as the model does"
        report[name] = {"file": path.name, "bytes": path.stat().st_size, "test_accuracy": accuracy,
                        "onnxruntime_test_accuracy": onnx_acc, "fit_seconds": round(seconds, 1)}
    report.update(classes=classes, train_rows=len(x_train), test_rows=len(x_test), seed=SEED)
    (data / "teachers.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
