#!/usr/bin/env python3
"""Cross-check of `distill export --torch`: the three lines a user writes load the file into
the module named in its metadata, and its logits match the ones distill computed.

    torch_check.py WEIGHTS.safetensors IMAGES.npy LOGITS.npy

Prints the largest absolute logit difference as JSON. Exit status 3 when torch, safetensors
or numpy is not importable.
"""
import json
import sys

try:
    import numpy as np
    import torch
    from torch import nn  # noqa: F401  (the module source refers to nn)
    from safetensors import safe_open
    from safetensors.torch import load_file
except ImportError as e:
    print(f"missing: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    path, images, expected = sys.argv[1:4]
    with safe_open(path, "pt") as f:
        source = f.metadata()["distill.torch_module"]
    # The three lines of the README:
    model = eval(source)
    model.load_state_dict(load_file(path))
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.load(images).astype(np.float32))).numpy()
    diff = float(np.abs(logits - np.load(expected)).max())
    print(json.dumps({"max_abs_diff": diff, "module": source}))


if __name__ == "__main__":
    main()
