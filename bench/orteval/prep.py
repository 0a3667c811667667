"""Preprocess an image-folder split for bench/orteval without natgw's code.

Reads the preprocessing and labels from the ONNX file's metadata (python3-onnx), decodes
each image with PIL, resizes with PyTorch's F.interpolate (bilinear, align_corners=False,
no antialias) after the metadata's geometry, normalises with its mean/std and writes
(int32 label, float32 3xRxR) records to stdout. Class folders are matched to the
metadata's labels through the data set's classes file (tab-separated; a header row when
its first field is not a folder), in folder order.

usage: python3 prep.py MODEL.onnx DATA_ROOT SPLIT | go run ./bench/orteval --model MODEL.onnx
"""
import json
import os
import struct
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image


def main():
    model, root, split = sys.argv[1:4]
    meta = {p.key: p.value for p in onnx.load(model, load_external_data=False).metadata_props}
    pp = json.loads(meta["natgw.preprocess"])
    labels = json.loads(meta["natgw.labels"])
    r = pp["resolution"]
    folders = sorted(d for d in os.listdir(os.path.join(root, split)) if os.path.isdir(os.path.join(root, split, d)))
    names = class_names(root, folders)
    index = {name: i for i, name in enumerate(labels)}
    missing = [n for n in names if n not in index]
    if missing:
        sys.exit(f"prep: classes without a label in the model: {missing[:3]}")
    mean = torch.tensor(pp["mean"]).view(3, 1, 1)
    std = torch.tensor(pp["std"]).view(3, 1, 1)
    out = sys.stdout.buffer
    count = 0
    for folder, name in zip(folders, names):
        d = os.path.join(root, split, folder)
        for f in sorted(os.listdir(d)):
            if not f.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            img = Image.open(os.path.join(d, f)).convert("RGB")
            x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
            x = geometry(x, r, pp.get("crop_fraction", 1.0))
            x = ((x / 255.0) - mean) / std
            out.write(struct.pack("<i", index[name]))
            out.write(x.contiguous().numpy().astype("<f4").tobytes())
            count += 1
    print(f"prep: {count} images of {root}/{split} at {r} px", file=sys.stderr)


def class_names(root, folders):
    for fn in ("classes.tsv", "classes.txt"):
        p = os.path.join(root, fn)
        if not os.path.exists(p):
            continue
        rows = [l.rstrip("\n").split("\t") for l in open(p, encoding="utf-8") if l.strip()]
        if rows and rows[0][0] not in folders and not rows[0][0].isdigit():
            rows = rows[1:]  # header
        # The folder's name is in some column (an index may come first), the label last.
        by_folder = {}
        for row in rows:
            key = next((v for v in row if v in folders), None)
            if key is not None:
                by_folder[key] = row[-1]
        if all(f in by_folder for f in folders):
            return [by_folder[f] for f in folders]
        # "index<TAB>name" files name the folders themselves.
        return folders
    return folders


def geometry(x, r, f):
    h, w = x.shape[1:]
    if f >= 1:
        size = (r, r)
    else:
        s = round(r / f)
        size = (s, w * s // h) if h <= w else (h * s // w, s)
    y = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    if f < 1:
        top, left = round((size[0] - r) / 2), round((size[1] - r) / 2)
        y = y[:, top:top + r, left:left + r]
    return y


if __name__ == "__main__":
    main()
