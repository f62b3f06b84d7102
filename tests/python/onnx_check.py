#!/usr/bin/env python3
"""Cross-check of an ONNX file written by `distill export --onnx`, in the real peers.

    onnx_check.py MODEL.onnx IMAGES.npy LABELS.npy

Runs onnx.checker.check_model(full_check=True), then onnxruntime on the images (float32,
[N, ...] as the model's input takes them), and prints JSON: the number of test errors and the
logits' shape. Exit status 3 when onnx or onnxruntime is not importable, so that the Rust test
can tell "did not run" from "failed".
"""
import json
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # the caller decides whether a missing peer is a failure
    print(f"missing: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    path, images, labels = sys.argv[1:4]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}.get("", None)
    x = np.load(images).astype(np.float32)
    y = np.load(labels).astype(np.int64)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: x})[0]
    errors = int((logits.argmax(axis=1) != y).sum())
    print(json.dumps({
        "errors": errors, "examples": int(len(y)), "shape": list(logits.shape),
        "opset": opset, "input": name, "output": session.get_outputs()[0].name,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
