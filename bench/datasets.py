"""Builds the two non-MNIST datasets the presets are validated on, as .npz files `distill` reads.

    python bench/datasets.py digits OUT.npz            # needs scikit-learn
    python bench/datasets.py animals WHEEL.whl OUT.npz  # `pip download animal-mnist==0.4 --no-deps`

- digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, values 0-16 scaled to
  0-255), 1,437 train / 360 test, stratified with seed 0.
- animals: the Animal-Shape MNIST silhouettes packaged in the `animal-mnist` wheel on PyPI
  (MIT; 10,000 images of 28x28, 10 classes of 1,000), 8,000 train / 2,000 test, stratified
  with seed 0. The wheel stores them as pickled NumPy arrays; it is read without installing the
  package (which would pull in TensorFlow).
"""

import gzip
import io
import pickle
import sys
import zipfile

import numpy as np


def stratified_split(x, y, test_fraction, seed):
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.extend(idx[: round(len(idx) * test_fraction)])
    mask = np.zeros(len(y), bool)
    mask[test] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return x, d.target.astype(np.int64)


def animals(wheel):
    with zipfile.ZipFile(wheel) as z:
        root = "animal_mnist/data/Animal_MNIST/"
        x = pickle.load(gzip.open(io.BytesIO(z.read(root + "animal_data_version_3.gz"))))
        y = pickle.load(gzip.open(io.BytesIO(z.read(root + "animal_label_version_3.gz"))))
    return np.asarray(x, np.uint8), np.asarray(y, np.int64)


def main():
    kind, *args = sys.argv[1:]
    x, y = digits() if kind == "digits" else animals(args[0])
    x_train, y_train, x_test, y_test = stratified_split(x, y, 0.2, 0)
    np.savez_compressed(args[-1], x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"{args[-1]}: {len(y_train)} train, {len(y_test)} test, images {x.shape[1:]}")


if __name__ == "__main__":
    main()
