#!/usr/bin/env python3
"""Builds public classification tables for `distill`'s feature-table input, and tree-ensemble
teachers for them as ONNX files.

    python bench/tables.py fetch NAME OUTDIR                    # needs apt-get, dpkg-deb, rdata
                                                                # (zipcodes: npm instead)
    python bench/tables.py teacher NAME OUTDIR --kind rf --trees 300
    python bench/tables.py mlp NAME OUTDIR [--hidden 128,128]   # a small MLP trained alone

NAME is one of (the first three from a Debian package of R data, fetched with `apt-get download`
into a temporary directory and unpacked with `dpkg-deb -x`; R's .rda files and lazy-load databases
are read with the `rdata` package):

- letter: mlbench's LetterRecognition (r-cran-mlbench), the UCI letter-recognition table:
  20,000 rows, 16 integer features, 26 classes "A".."Z".
- shuttle: mlbench's Shuttle (r-cran-mlbench), the UCI Statlog shuttle table (its official
  training and test files joined): 58,000 rows, 9 features, 7 classes of very unequal size
  ("Rad.Flow" 45,586 rows, "Bpv.Close" 10).
- diamonds: ggplot2's diamonds (r-cran-ggplot2), the `cut` quality ("Fair", "Good", "Very Good",
  "Premium", "Ideal") from the other nine columns: 53,940 rows, 22 features after `color` (7
  levels) and `clarity` (8 levels) are one-hot encoded.
- zipcodes: vega-datasets' zipcodes.csv (a 2017 GeoNames snapshot of US postal codes, CC BY 4.0),
  the `state` code from `latitude` and `longitude` alone: 2 features, 52 classes (the 50 states,
  "DC" and "PR"). The PyPI package vega_datasets only lists this table and downloads it at run
  time, so it is read out of the npm package vega-datasets@3.2.1 (`npm pack` into a temporary
  directory, the file taken from the tarball; its git blob SHA-1 is checked against the
  package's datapackage.json). 42,049 rows, none missing a coordinate; the 48 rows of the 7
  territories with fewer than 50 are dropped (GU 21, VI 16, FM 4, MP 3, MH 2, AS 1, PW 1),
  leaving 42,001 rows, classes of 91 ("RI") to 2,670 ("TX") rows. 8,594 rows repeat another
  row's coordinates (always with the same state), so some test points also appear in the
  training set.

`fetch` writes OUTDIR/NAME/:

- train.csv, test.csv: a header row, the numeric features (categorical columns one-hot encoded as
  COLUMN_LEVEL, levels in sorted order, so train and test share the columns), then `label`, the
  class name as the source spells it. Rows with a missing value are dropped (none of these
  tables has one). The test set is a stratified 20% drawn with seed 0 (bench/datasets.py's
  stratified_split), never a source's own split. Values are float32, written so that they parse
  back to the same float32.
- train.parquet, test.parquet: the same columns (features float32, `label` a UTF-8 string),
  flat, with no pandas metadata.
- NAME.npz: x_train, x_test float32 [N, F] (the CSV rows in the same order) and y_train, y_test
  int64, the position of each label in the sorted list of distinct training labels.

`teacher` trains on the training rows only and writes OUTDIR/NAME/NAME-KINDTREES.onnx (e.g.
letter-rf300.onnx): rf and extratrees (scikit-learn, fully grown trees), hgb (scikit-learn
HistGradientBoosting, no early stopping), lightgbm (31 leaves) or xgboost (depth 6), each with
TREES trees or boosting rounds, seed 0, exported with ZipMap off (skl2onnx or onnxmltools).
Forests of fully grown trees are large: letter-rf300.onnx is 249 MB, extratrees 487 MB.
On zipcodes, lightgbm and hgb diverge without regularization (test accuracy 0.98 after 20 rounds,
0.20 and 0.18 after 300: leaves of a few points all of one class get huge values), so there both
are trained with an L2 penalty of 1 on leaf values (BOOST_L2); xgboost has one by default.
The ONNX input is `input`, float32 [N, F] in the CSV's column order; its outputs are `label` and
`probabilities` [N, classes], the classes in the npz's order. The file is scored with
onnxruntime and its test accuracy printed beside the trained model's: the two must agree.

`mlp` trains scikit-learn's MLPClassifier alone (standardized inputs, early stopping, seed 0):
the accuracy a distilled student of that size starts from.

Needs numpy, pandas, pyarrow, rdata, npm (for zipcodes), scikit-learn, skl2onnx, onnxruntime,
and lightgbm, xgboost and onnxmltools for those kinds (pip install numpy pandas pyarrow rdata
scikit-learn skl2onnx onnxruntime lightgbm xgboost onnxmltools). Built with r-cran-mlbench 2.1-3-1
and r-cran-ggplot2 3.4.1+dfsg-1 (Debian 12), and vega-datasets 3.2.1 (npm).
"""
import argparse
import bz2
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import tarfile
import tempfile
import time
import zlib

import numpy as np

from datasets import stratified_split

# NAME: (Debian package, R object, class column)
TABLES = {
    "letter": ("r-cran-mlbench", "LetterRecognition", "lettr"),
    "shuttle": ("r-cran-mlbench", "Shuttle", "Class"),
    "diamonds": ("r-cran-ggplot2", "diamonds", "cut"),
    "zipcodes": ("vega-datasets@3.2.1", "zipcodes", "state"),  # npm, not Debian
}
ZIPCODES_MIN_ROWS = 50  # states and territories with fewer rows are dropped
# L2 regularization of the leaf values of lightgbm (reg_lambda) and hgb (l2_regularization), by
# table; 0 (both libraries' default) where not listed. See `teacher` in the docstring.
BOOST_L2 = {"zipcodes": 1.0}
KINDS = ["rf", "extratrees", "hgb", "lightgbm", "xgboost"]


def fetch_deb(package, tmp):
    """Downloads and unpacks one Debian package; returns its R library folder and version."""
    subprocess.run(["apt-get", "download", package], cwd=tmp, check=True)
    deb = glob.glob(os.path.join(tmp, f"{package}_*.deb"))[0]
    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "root")], check=True)
    version = os.path.basename(deb).split("_")[1]
    return os.path.join(tmp, "root", "usr", "lib", "R", "site-library"), version


def unpack(blob):
    """One object of an R lazy-load database: 4-byte length, then zlib, or a type byte and
    bzip2 ('2'), xz ('Z') or nothing ('0')."""
    size, kind = int.from_bytes(blob[:4], "big"), blob[4:5]
    if kind == b"Z":
        raw = lzma.decompress(blob[5:])
    elif kind == b"2":
        raw = bz2.decompress(blob[5:])
    elif kind == b"0":
        raw = blob[5:]
    else:
        raw = zlib.decompress(blob[4:])
    assert len(raw) == size, "corrupt lazy-load object"
    return raw


def read_zipcodes(package, tmp):
    """vega-datasets' zipcodes.csv from its npm tarball: latitude, longitude and state, the
    states and territories with fewer than ZIPCODES_MIN_ROWS rows dropped."""
    import pandas as pd

    subprocess.run(["npm", "pack", "--silent", package], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    with tarfile.open(glob.glob(os.path.join(tmp, "vega-datasets-*.tgz"))[0]) as tar:
        raw = tar.extractfile("package/data/zipcodes.csv").read()
        meta = json.load(tar.extractfile("package/datapackage.json"))
    sha1 = [r["hash"] for r in meta["resources"] if r["path"] == "zipcodes.csv"][0]
    blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()  # a git blob id
    assert sha1 == "sha1:" + blob, "zipcodes.csv does not match its hash"
    # keep_default_na off: no state code may read as a missing value
    frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    frame = frame[["latitude", "longitude", "state"]].replace("", np.nan)
    frame = frame.dropna().astype({"latitude": np.float64, "longitude": np.float64})
    counts = frame["state"].value_counts()
    small = counts[counts < ZIPCODES_MIN_ROWS]
    print(f"zipcodes.csv: {len(frame)} rows with coordinates; dropped {int(small.sum())} rows of "
          f"{len(small)} states/territories under {ZIPCODES_MIN_ROWS} rows: "
          + ", ".join(f"{s} {n}" for s, n in small.items()))
    return frame[~frame["state"].isin(small.index)]


def read_r(data_dir, obj):
    """An R data frame from a package's data/ folder: OBJ.rda, or a lazy-load database."""
    import warnings

    import rdata

    warnings.filterwarnings("ignore", module="rdata")  # R classes it maps to data.frame
    rda = os.path.join(data_dir, f"{obj}.rda")
    if os.path.exists(rda):
        return rdata.read_rda(rda)[obj]
    with open(os.path.join(data_dir, "Rdata.rdx"), "rb") as f:
        raw = f.read()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else unpack(raw)
    index = rdata.conversion.convert(rdata.parser.parse_data(raw))
    offset, length = (int(v) for v in index["variables"][obj])
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        f.seek(offset)
        blob = f.read(length)
    return rdata.conversion.convert(rdata.parser.parse_data(unpack(blob)))


def features(frame):
    """Numeric columns as they are, the others one-hot by sorted level, in the frame's order."""
    import pandas as pd

    cols = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
            values = col.astype(str)
            for level in sorted(values.unique()):
                cols[f"{name}_{level}"] = (values == level).to_numpy(np.float32)
        else:
            cols[name] = col.to_numpy(np.float64).astype(np.float32)
    return cols


def write_split(out, part, names, x, labels):
    """PART.csv and PART.parquet, checking that the CSV reads back to the same float32."""
    import pandas as pd

    frame = pd.DataFrame({n: x[:, j] for j, n in enumerate(names)})
    frame["label"] = labels
    csv = os.path.join(out, f"{part}.csv")
    frame.to_csv(csv, index=False)
    back = pd.read_csv(csv, dtype={"label": str})
    assert list(back.columns) == names + ["label"]
    assert np.array_equal(back[names].to_numpy(np.float32), x), f"{csv} does not read back"
    assert (back["label"].to_numpy(str) == labels).all()
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(x[:, j], pa.float32()) for j in range(len(names))]
    table = pa.table(columns + [pa.array(labels.tolist(), pa.string())], names=names + ["label"])
    pq.write_table(table, os.path.join(out, f"{part}.parquet"))


def fetch(name, outdir):
    import pandas as pd

    package, obj, target = TABLES[name]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if name == "zipcodes":
            package, version = package.split("@")
            frame = read_zipcodes(f"{package}@{version}", tmp)
        else:
            lib, version = fetch_deb(package, tmp)
            frame = read_r(os.path.join(lib, package.removeprefix("r-cran-"), "data"), obj)
    frame = pd.DataFrame(frame).reset_index(drop=True)
    rows = len(frame)
    frame = frame.dropna().reset_index(drop=True)
    labels = frame.pop(target).astype(str).to_numpy(str)
    cols = features(frame)
    names = list(cols)
    x = np.stack([cols[n] for n in names], axis=1)
    classes = sorted(set(labels.tolist()))
    y = np.searchsorted(np.array(classes), labels).astype(np.int64)
    rows_train, _, rows_test, _ = stratified_split(np.arange(len(y)), y, 0.2, 0)
    assert sorted(set(labels[rows_train].tolist())) == classes, "a class has no training row"
    out = os.path.join(outdir, name)
    os.makedirs(out, exist_ok=True)
    for part, r in (("train", rows_train), ("test", rows_test)):
        write_split(out, part, names, x[r], labels[r])
    np.savez_compressed(
        os.path.join(out, f"{name}.npz"), x_train=x[rows_train], y_train=y[rows_train],
        x_test=x[rows_test], y_test=y[rows_test],
    )
    print(f"{name}: {package} {version}, {obj}; {rows} rows, {rows - len(y)} dropped for NA")
    print(f"{out}: {len(rows_train)} train, {len(rows_test)} test, {len(names)} features, "
          f"{len(classes)} classes {classes} ({time.perf_counter() - t:.1f} s)")


def load(name, outdir):
    d = np.load(os.path.join(outdir, name, f"{name}.npz"))
    return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


def train(kind, trees, x, y, threads, l2=0.0):
    if kind in ("rf", "extratrees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if kind == "rf" else ExtraTreesClassifier
        return cls(n_estimators=trees, n_jobs=threads, random_state=0).fit(x, y)
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=trees, early_stopping=False, l2_regularization=l2, random_state=0
        ).fit(x, y)
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(
            n_estimators=trees, num_leaves=31, reg_lambda=l2, n_jobs=threads, random_state=0,
            verbose=-1,
        ).fit(x, y)
    import xgboost

    return xgboost.XGBClassifier(
        n_estimators=trees, max_depth=6, tree_method="hist", n_jobs=threads, random_state=0
    ).fit(x, y)


def export(kind, model, features_):
    """The model as ONNX: input `input` float32 [N, F], outputs `label` and `probabilities`."""
    if kind in ("lightgbm", "xgboost"):
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, features_]))]
        if kind == "lightgbm":
            return convert_lightgbm(model, initial_types=types, zipmap=False, target_opset=15)
        return convert_xgboost(model, initial_types=types, target_opset=15)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    if kind == "hgb":
        import skl2onnx.common.tree_ensemble as te

        # skl2onnx 1.20 gives leaves the Python bool False for this attribute, which recent
        # onnx refuses in an ints attribute; the same value as an int.
        add = te.add_node
        te.add_node = lambda *a, nodes_missing_value_tracks_true=0, **k: add(
            *a, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **k
        )
    types = [("input", FloatTensorType([None, features_]))]
    return convert_sklearn(
        model, initial_types=types, options={id(model): {"zipmap": False}},
        target_opset={"": 15, "ai.onnx.ml": 3},
    )


def onnx_predict(path, x, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    probs = np.concatenate([
        sess.run(["probabilities"], {"input": x[i:i + 4096]})[0] for i in range(0, len(x), 4096)
    ])
    return probs


def teacher(name, outdir, kind, trees, threads):
    x_train, y_train, x_test, y_test = load(name, outdir)
    t = time.perf_counter()
    model = train(kind, trees, x_train, y_train, threads, BOOST_L2.get(name, 0.0))
    fit_s = time.perf_counter() - t
    assert list(model.classes_) == list(range(y_train.max() + 1)), "classes out of order"
    t = time.perf_counter()
    onx = export(kind, model, x_train.shape[1])
    path = os.path.join(outdir, name, f"{name}-{kind}{trees}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    export_s = time.perf_counter() - t
    ops = sorted({n.op_type for n in onx.graph.node})
    opsets = {o.domain or "ai.onnx": o.version for o in onx.opset_import}
    del onx
    sk_probs = model.predict_proba(x_test)
    sk_acc = float((model.predict(x_test) == y_test).mean())
    t = time.perf_counter()
    probs = onnx_predict(path, x_test, threads)
    ort_s = time.perf_counter() - t
    ort_acc = float((probs.argmax(1) == y_test).mean())
    agree = int((probs.argmax(1) == sk_probs.argmax(1)).sum())
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, ops {ops}, opsets {opsets}")
    print(f"{name} {kind}{trees}: test accuracy {sk_acc:.4f} (model), {ort_acc:.4f} (onnxruntime); "
          f"{agree} of {len(y_test)} predictions agree, max |p difference| "
          f"{np.abs(probs - sk_probs).max():.2e}; fit {fit_s:.1f} s, export {export_s:.1f} s, "
          f"onnxruntime {ort_s:.1f} s")
    if sk_acc != ort_acc:
        raise SystemExit(f"{path}: onnxruntime's accuracy differs from the model's")


def mlp(name, outdir, hidden):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, x_test, y_test = load(name, outdir)
    t = time.perf_counter()
    net = make_pipeline(StandardScaler(), MLPClassifier(
        hidden, early_stopping=True, max_iter=500, random_state=0,
    )).fit(x_train, y_train)
    acc = float((net.predict(x_test) == y_test).mean())
    print(f"{name} mlp:{','.join(map(str, hidden))} alone: test accuracy {acc:.4f} "
          f"({net[-1].n_iter_} epochs, {time.perf_counter() - t:.1f} s)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["fetch", "teacher", "mlp"])
    p.add_argument("name", choices=sorted(TABLES))
    p.add_argument("outdir")
    p.add_argument("--kind", choices=KINDS, default="rf")
    p.add_argument("--trees", type=int, default=300)
    p.add_argument("--hidden", default="128,128")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.command == "fetch":
        fetch(a.name, a.outdir)
    elif a.command == "teacher":
        teacher(a.name, a.outdir, a.kind, a.trees, a.threads)
    else:
        mlp(a.name, a.outdir, tuple(int(w) for w in a.hidden.split(",")))


if __name__ == "__main__":
    main()
