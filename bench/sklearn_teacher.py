#!/usr/bin/env python3
"""Trains a scikit-learn MLP on MNIST and exports it with skl2onnx, as a foreign teacher for
`bench/compare.sh`: input float32 [N, 784] in [0, 1], outputs `label` and `probabilities`
(ZipMap off, as distill asks).

    sklearn_teacher.py OUT.onnx [--hidden 512] [--train 20000] [--seed 1]

Needs scikit-learn, skl2onnx and numpy (compare.sh installs them into its venv).
"""
import argparse
import gzip
import os

import numpy as np
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx(name):
    with gzip.open(os.path.join(ROOT, "data", "mnist", name), "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    x = idx("train-images-idx3-ubyte.gz")[: a.train].reshape(a.train, -1) / 255.0
    y = idx("train-labels-idx1-ubyte.gz")[: a.train]
    clf = MLPClassifier((a.hidden,), max_iter=10, random_state=a.seed).fit(x, y)
    onx = to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}})
    with open(a.out, "wb") as f:
        f.write(onx.SerializeToString())
    print(f"{a.out}: MLP {a.hidden} hidden units, training accuracy {clf.score(x, y):.4f}")


if __name__ == "__main__":
    main()
