# Reference eval preprocessing in PyTorch, used by TestTensorMatchesTorch.
# Reads a JSON list of cases from argv[1]; each case has: in (raw HWC uint8
# file), out (raw CHW float32 file to write), w, h, r, f, mean, std.
# Geometry is computed independently, the torchvision way (Resize(int) on the
# shorter side, CenterCrop with Python's round).
import json, sys
import numpy as np
import torch
import torch.nn.functional as F

for c in json.load(open(sys.argv[1])):
    w, h, r, f = c["w"], c["h"], c["r"], c["f"]
    x = np.fromfile(c["in"], dtype=np.uint8).reshape(h, w, 3)
    t = torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()
    if f >= 1:
        size = (r, r)
    else:
        s = round(r / f)
        if w <= h:
            size = (int(s * h / w), s)
        else:
            size = (s, int(s * w / h))
    y = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=False)
    top = int(round((size[0] - r) / 2.0))
    left = int(round((size[1] - r) / 2.0))
    y = y[0, :, top:top + r, left:left + r]
    mean = torch.tensor(c["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(c["std"], dtype=torch.float32).view(3, 1, 1)
    y = (y / 255.0 - mean) / std
    y.contiguous().numpy().astype(np.float32).tofile(c["out"])
