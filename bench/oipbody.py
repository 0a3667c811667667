"""Writes Open Inference Protocol request bodies for one random 1x3xRxR FP32 image (seed 1).

usage: oipbody.py R DIR  ->  DIR/req1.json (JSON data) and DIR/req1.bin (binary tensor
extension; DIR/req1.bin.len holds the JSON header's length for Inference-Header-Content-Length).
"""
import json
import random
import struct
import sys

r, out = int(sys.argv[1]), sys.argv[2]
n = 3 * r * r
random.seed(1)
json.dump({"inputs": [{"name": "input", "shape": [1, 3, r, r], "datatype": "FP32",
                       "data": [round(random.uniform(-1, 1), 4) for _ in range(n)]}]},
          open(f"{out}/req1.json", "w"))
random.seed(1)
hdr = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, r, r], "datatype": "FP32",
                              "parameters": {"binary_data_size": 4 * n}}]}).encode()
open(f"{out}/req1.bin", "wb").write(hdr + struct.pack("<%df" % n, *[random.uniform(-1, 1) for _ in range(n)]))
open(f"{out}/req1.bin.len", "w").write(str(len(hdr)))
