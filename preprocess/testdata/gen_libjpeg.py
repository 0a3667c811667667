"""Writes testdata/libjpeg: JPEGs of sharp colour edges and gradients at each chroma
subsampling and at odd sizes, and what libjpeg-turbo decodes them to (PIL, the decoder of
browsers, Android and OpenCV too) as raw RGB (.rgb, 3 bytes per pixel, rows top down).
TestDecodeMatchesLibjpeg checks preprocess.Decode against these files.

usage: /usr/bin/python3 preprocess/testdata/gen_libjpeg.py   (python3-pil)
"""
import json
import os

import numpy as np
from PIL import Image, features

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libjpeg")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def picture(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 120 * np.sin(x / 3.1) * np.cos(y / 5.3)
    g = 255 * (x / max(w - 1, 1))
    b = 255 * ((x // 4 + y // 3) % 2)  # sharp colour edges: where replication and libjpeg differ most
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


cases = []
for name, (w, h), sub in [
    ("420_64x64", (64, 64), 2),
    ("420_17x13", (17, 13), 2),
    ("420_2x1", (2, 1), 2),
    ("422_33x20", (33, 20), 1),
    ("444_31x9", (31, 9), 0),
]:
    p = os.path.join(out, name + ".jpg")
    picture(w, h).save(p, quality=90, subsampling=sub)
    rgb = np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8)
    rgb.tofile(os.path.join(out, name + ".rgb"))
    cases.append({"name": name, "width": w, "height": h})
with open(os.path.join(out, "cases.json"), "w") as f:
    json.dump({"decoder": "PIL " + Image.__version__ + ", libjpeg-turbo " + str(features.version("libjpeg_turbo")),
               "cases": cases}, f, indent=1)
    f.write("\n")
