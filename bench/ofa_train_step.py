#!/usr/bin/python3
"""Times one sandwich training step of Once-for-All's own PyTorch code, the peer natgw's
trainer is compared with (bench/train-step.sh runs both in the same run).

The step is OFA's progressive-shrinking step as its README here describes it: the largest
subnet (set_max_net), two random ones (sample_active_subnet), the smallest (every choice at its minimum),
each forward and backward on the same batch (cross entropy with label smoothing 0.1, the
largest's outputs as soft targets of the others), then one SGD step (Nesterov, momentum 0.9,
weight decay 3e-5). OFAMobileNetV3 w1.0, 102 classes, ks 3/5/7, e 3/4/6, d 2/3/4, random
data, batch 32, 2 threads.

    PYTHONPATH=../shared/reference/ofa-src /usr/bin/python3 bench/ofa_train_step.py [--resolutions 64,128] [--steps 5]

Prints one JSON object per resolution: {"r", "batch", "images_per_sec", "s_per_step", "steps"}.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3


def soft_ce(logits, target):
    return torch.mean(torch.sum(-target * F.log_softmax(logits, dim=1), dim=1))


def step(net, opt, x, y, classes):
    opt.zero_grad()
    smooth = F.one_hot(y, classes).float() * 0.9 + 0.1 / classes
    net.set_max_net()
    out = net(x)
    loss = soft_ce(out, smooth)
    loss.backward()
    soft = F.softmax(out.detach(), dim=1)
    for kind in ("random", "random", "min"):
        if kind == "min":
            # OFA's network has no set_min_net: the smallest is every choice at its minimum.
            net.set_active_subnet(ks=min(net.ks_list), e=min(net.expand_ratio_list), d=min(net.depth_list))
        else:
            net.sample_active_subnet()
        o = net(x)
        loss = soft_ce(o, smooth) + soft_ce(o, soft)
        loss.backward()
    opt.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolutions", default="64,128")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    classes = 102
    net = OFAMobileNetV3(n_classes=classes, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.train()
    params = [p for n, p in net.named_parameters()]
    decay = [p for n, p in net.named_parameters() if "bn" not in n and "bias" not in n]
    no_decay = [p for n, p in net.named_parameters() if "bn" in n or "bias" in n]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0}],
                          lr=0.01, momentum=0.9, nesterov=True)
    assert len(decay) + len(no_decay) == len(params)
    for r in [int(v) for v in args.resolutions.split(",")]:
        x = torch.randn(args.batch, 3, r, r)
        y = torch.randint(0, classes, (args.batch,))
        step(net, opt, x, y, classes)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(net, opt, x, y, classes)
        s = (time.perf_counter() - t0) / args.steps
        print(json.dumps({"r": r, "batch": args.batch, "images_per_sec": round(args.batch / s, 2), "s_per_step": round(s, 3),
                          "steps": args.steps, "threads": args.threads, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
