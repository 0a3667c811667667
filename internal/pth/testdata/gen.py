"""Generates the small torch.save fixtures of package pth and their expected contents (expected.json).

Run once with PyTorch installed (Debian python3-torch 1.13): /usr/bin/python3 gen.py
The outputs are committed; the tests only read them.
"""
import collections
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def state_dict():
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 2, 2, generator=g)
    sd["conv.bias"] = torch.nn.Parameter(torch.randn(4, generator=g))
    sd["half"] = torch.tensor([1.0, -2.5, 65504.0, 6.1e-5, 5.96e-8, 0.0, -0.0, 0.333], dtype=torch.float16)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd["view.transposed"] = base.t()  # non-contiguous: stride (1, 4)
    sd["view.narrow"] = base[1:, 1:3]  # storage offset 5, stride (4, 1)
    sd["shared.row0"] = base[0]  # same storage as the views above
    sd["shared.row2"] = base[2]
    sd["bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)  # 0-dim int64
    sd["double"] = torch.tensor([[0.1, 1e-3], [2.0, -7.25]], dtype=torch.float64)
    sd["bf16"] = torch.tensor([1.0, -3.5, 0.15625], dtype=torch.bfloat16)
    sd["int32"] = torch.tensor([-7, 0, 2147483647], dtype=torch.int32)
    sd["uint8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["empty"] = torch.zeros(0, 3)
    sd["not_a_tensor"] = 7  # skipped by the reader
    return sd


def expected(sd):
    out = []
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        v = v.detach()
        dt = {torch.float32: "F32", torch.float16: "F16", torch.float64: "F64", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}[v.dtype]
        e = {"name": k, "dtype": dt, "shape": list(v.shape)}
        if v.is_floating_point():
            e["data"] = v.to(torch.float32).flatten().tolist()
        else:
            e["ints"] = [int(x) for x in v.to(torch.int64).flatten().tolist()]
        out.append(e)
    return out


def main():
    sd = state_dict()
    exp = expected(sd)
    files = {}
    for name, obj, zipfmt in [
        ("zip_state.pth", {"state_dict": sd, "epoch": 3, "optimizer": {"lr": 0.1}}, True),
        ("legacy_state.pth", {"state_dict": sd, "epoch": 3}, False),
        ("zip_bare.pth", sd, True),
        ("legacy_bare.pth", dict(sd), False),
    ]:
        torch.save(obj, os.path.join(HERE, name), _use_new_zipfile_serialization=zipfmt)
        files[name] = exp
        # The fixture must load back in PyTorch to what was saved.
        back = torch.load(os.path.join(HERE, name))
        back = back.get("state_dict", back)
        assert list(k for k in back if isinstance(back[k], torch.Tensor)) == [e["name"] for e in exp]
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump({"torch": torch.__version__, "files": files}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
