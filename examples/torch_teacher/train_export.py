#!/usr/bin/env python3
"""A foreign teacher for `distill`: a small PyTorch CNN trained on the repository's MNIST files
and exported to ONNX (opset 17, dynamic batch), as a user of PyTorch would do it.

    python examples/torch_teacher/train_export.py            # writes mnist_cnn.onnx + .json

The model expects normalized pixels, (x - 0.1307) / 0.3081, outside its graph, as most PyTorch
MNIST code does; `distill` is told so with `--input-norm 0.1307,0.3081`. Needs torch, onnx,
onnxscript and numpy (pip install torch onnx onnxscript numpy).
"""
import gzip
import json
import pathlib
import struct
import time

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent.parent / "data" / "mnist"
MEAN, STD = 0.1307, 0.3081
SEED, EPOCHS, BATCH = 1, 4, 128


def idx(name):
    raw = gzip.open(DATA / f"{name}.gz", "rb").read()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def images(name):
    x = torch.tensor(idx(name), dtype=torch.float32).unsqueeze(1) / 255.0
    return (x - MEAN) / STD


def model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25),
        nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )


def main():
    torch.manual_seed(SEED)
    xtr, ytr = images("train-images-idx3-ubyte"), torch.tensor(idx("train-labels-idx1-ubyte"), dtype=torch.long)
    xte, yte = images("t10k-images-idx3-ubyte"), torch.tensor(idx("t10k-labels-idx1-ubyte"), dtype=torch.long)
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=EPOCHS * ((len(xtr) + BATCH - 1) // BATCH))
    t0 = time.time()
    for epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(xtr))
        for s in range(0, len(xtr), BATCH):
            i = perm[s : s + BATCH]
            loss = nn.functional.cross_entropy(net(xtr[i]), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}", flush=True)
    net.eval()
    with torch.no_grad():
        errors = int((net(xte).argmax(1) != yte).sum())
    print(f"test errors: {errors} of {len(xte)}")
    onnx_path = HERE / "mnist_cnn.onnx"
    torch.onnx.export(
        net, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=17, dynamo=False,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    (HERE / "mnist_cnn.json").write_text(json.dumps({
        "test_errors": errors, "test_examples": len(xte), "epochs": EPOCHS, "seed": SEED,
        "train_examples": len(xtr), "input_norm": [MEAN, STD], "seconds": round(time.time() - t0, 1),
        "torch": torch.__version__, "opset": 17,
    }, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
