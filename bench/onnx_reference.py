#!/usr/bin/env python3
"""onnxruntime reference for `distill bench --only onnx_teacher_s --onnx-teacher FILE`: the
same ONNX file over the same 60,000 MNIST training images, in the same JSON schema.

    onnx_reference.py FILE [--input-norm MEAN,STD] [--threads N] [--batch N]
                           [--reps N] [--warmup N] [--json OUT] [--rows NPZ]

With --rows, the model reads the x_train rows of a feature-table .npz (as `distill bench
--data NPZ` does) instead of MNIST's images.

Pixels are read from data/mnist (IDX, gzip), scaled to [0, 1], normalized as
`(x - MEAN) / STD` when --input-norm is given (as distill does), and shaped as the model's
input asks: [N, 784] for rank 2, [N, 1, 28, 28] for rank 4. One repeat is one pass over all
images in batches of --batch (256, distill's chunk) with --threads intra-op threads and one
inter-op thread. Prints one JSON object:

  {"implementation": "onnxruntime", "version": ..., "threads": N,
   "figures": {"onnx_teacher_s": {"median": x, "min": x, "max": x}}}

Exit status 3 when onnxruntime or numpy is missing.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"missing: {e}", file=sys.stderr)
    sys.exit(3)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mnist_train_images():
    path = os.path.join(ROOT, "data", "mnist", "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows * cols)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--input-norm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json")
    p.add_argument("--rows")
    a = p.parse_args()
    if a.threads < 1 or a.batch < 1 or a.reps < 1 or a.warmup < 0:
        p.error("--threads, --batch and --reps must be at least 1, --warmup at least 0")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if a.rows:
        x = np.load(a.rows)["x_train"].astype(np.float32)
    else:
        x = mnist_train_images().astype(np.float32) / 255.0
    if a.input_norm:
        mean, std = (float(v) for v in a.input_norm.split(","))
        x = (x - mean) / std
    if len(inp.shape) == 4:
        x = x.reshape(-1, 1, 28, 28)
    x = np.ascontiguousarray(x)

    def one_pass():
        start = time.perf_counter()
        for s in range(0, len(x), a.batch):
            sess.run(None, {inp.name: x[s : s + a.batch]})
        return time.perf_counter() - start

    for _ in range(a.warmup):
        one_pass()
    times = [one_pass() for _ in range(a.reps)]
    result = {
        "implementation": "onnxruntime",
        "version": ort.__version__,
        "threads": a.threads,
        "figures": {
            "onnx_teacher_s": {
                "median": statistics.median(times),
                "min": min(times),
                "max": max(times),
            },
            "onnx_teacher_images": {"median": len(x), "min": len(x), "max": len(x)},
        },
    }
    print(json.dumps(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
