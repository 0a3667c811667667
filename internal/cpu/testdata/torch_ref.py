"""Computes PyTorch reference outputs for torch_test.go.

argv: dir. dir/spec.json lists jobs; each reads float32 little-endian .bin inputs and writes
job["out"]. Run by the Go test only.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype="<f4").reshape(shape))


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    with open(os.path.join(d, "spec.json")) as f:
        jobs = json.load(f)
    with torch.no_grad():
        for j in jobs:
            if j["op"] == "conv":
                c = j["conv"]
                cg = c["C"] // c["Groups"]
                x = load(d, j["x"], (c["N"], c["C"], c["H"], c["W"]))
                w = load(d, j["w"], (c["K"], cg, c["KH"], c["KW"]))
                b = load(d, j["b"], (c["K"],))
                # F.pad takes (left, right, top, bottom): asymmetric SAME-style padding.
                x = F.pad(x, (c["PadLeft"], c["PadRight"], c["PadTop"], c["PadBottom"]))
                y = F.conv2d(x, w, b, stride=(c["StrideH"], c["StrideW"]), groups=c["Groups"])
                y = {"none": lambda t: t, "relu6": F.relu6, "hswish": F.hardswish}[j["act"]](y)
            elif j["op"] == "act":
                x = load(d, j["x"], (-1,))
                y = {"hswish": F.hardswish, "hsigmoid": F.hardsigmoid, "relu6": F.relu6}[j["act"]](x)
            else:
                raise SystemExit("unknown op " + j["op"])
            y.contiguous().numpy().astype("<f4").tofile(os.path.join(d, j["out"]))


if __name__ == "__main__":
    main()
