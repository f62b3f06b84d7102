#!/usr/bin/env python3
"""Teacher speed for tree ensembles: distill's native evaluator against onnxruntime on the same
ONNX file and rows.

    python bench/trees.py [--kind rf|lgbm] [--out DIR] [--trees 300] [--rows 100000] [--threads 2]

Trains a random forest (`rf`: 300 trees by default, fully grown; skl2onnx) or LightGBM
(`lgbm`: 300 boosting rounds of 31 leaves, one tree per class and round; onnxmltools) on a
synthetic 20,000 x 16 table with 26 classes (the shape of the UCI letter-recognition table),
exports it with zipmap=False into DIR (default: a fresh temporary directory; the file is large and is never
committed), scores the same float32 rows with onnxruntime (the given intra-op threads, batches
of 1,024) and with `cargo run --release --example trees_bench` (rayon with the same thread
count), and prints both times, their ratio distill/onnxruntime and the largest difference
between the two sets of probabilities. Needs scikit-learn, skl2onnx, onnxruntime and numpy.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table(rows, seed):
    """20,000 training rows and `rows` more from the same distribution, float32."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=20_000 + rows, n_features=16, n_informative=12, n_redundant=2,
        n_classes=26, n_clusters_per_class=1, class_sep=1.5, random_state=seed,
    )
    return x.astype(np.float32), y


def build_model(path, kind, trees, seed, threads, x, y):
    x, y = x[:20_000], y[:20_000]
    t = time.perf_counter()
    if kind == "rf":
        from skl2onnx import to_onnx
        from sklearn.ensemble import RandomForestClassifier

        rf = RandomForestClassifier(n_estimators=trees, n_jobs=threads, random_state=seed).fit(x, y)
        onx = to_onnx(rf, x[:1], options={"zipmap": False})
    else:
        import lightgbm
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        gbm = lightgbm.LGBMClassifier(
            n_estimators=trees, num_leaves=31, n_jobs=threads, random_state=seed, verbose=-1
        ).fit(x, y)
        onx = convert_lightgbm(
            gbm, initial_types=[("input", FloatTensorType([None, x.shape[1]]))], zipmap=False, target_opset=15
        )
    print(f"trained {kind} with {trees} rounds in {time.perf_counter() - t:.1f} s")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")
    return path


def time_onnxruntime(path, x, threads, batch, repeats):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(["probabilities"], {name: x[:batch]})
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = [sess.run(["probabilities"], {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        best = min(best, time.perf_counter() - t)
    return best, np.concatenate(out)


def time_distill(path, x_path, probs_path, threads, repeats):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "trees_bench", "--",
           path, x_path, probs_path, str(repeats)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["rf", "lgbm"], default="rf")
    ap.add_argument("--out", help="directory for the ONNX file and rows (default: a new temporary one)")
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="distill-trees-")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{a.kind}{a.trees}.onnx")
    data, labels = table(a.rows, a.seed)
    if not os.path.exists(path):
        build_model(path, a.kind, a.trees, a.seed, a.threads, data, labels)
    x = data[20_000:]
    x_path = os.path.join(out, "rows.npy")
    np.save(x_path, x)
    ort_s, ort_p = time_onnxruntime(path, x, a.threads, a.batch, a.repeats)
    print(f"onnxruntime: {a.rows} rows in {ort_s:.3f} s ({a.threads} intra-op threads, batches of {a.batch})")
    probs_path = os.path.join(out, f"{a.kind}{a.trees}_distill.npy")
    d = time_distill(path, x_path, probs_path, a.threads, a.repeats)
    print(f"distill:     {d['rows']} rows in {d['score_s']:.3f} s ({d['threads']} threads; load {d['load_s']:.1f} s)")
    diff = float(np.abs(np.load(probs_path) - ort_p).max())
    print(f"ratio distill/onnxruntime: {d['score_s'] / ort_s:.2f}; max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
