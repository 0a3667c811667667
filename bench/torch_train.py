#!/usr/bin/python3
"""PyTorch reference for natgw's supernet training step (CPU).

What
    Trains the OFA MobileNetV3 supernet (the parity checkpoint) with weight sharing, the
    way OFA's dynamic modules do: every step builds each active subnet's forward from
    slices and kernel transforms of the shared torch Parameters (functional F.conv2d /
    F.batch_norm / F.linear on sliced tensors, train-mode BatchNorm updating the shared
    running statistics in place), so gradients land in the supernet tensors. A step is
    the sandwich rule: the largest, the smallest and N random subnets, label smoothing
    0.1, soft targets from the largest (in-place distillation), gradients summed, then
    one SGD step (Nesterov, momentum 0.9, weight decay 3e-5 except "bn"/"bias" names).
    The architecture code (stages, make_divisible, kernel transforms) is imported from
    bench/torch_forward.py.

How to run (Debian's python3-torch 1.13)
    /usr/bin/python3 bench/torch_train.py --check
        Runs the three cases of fixtures/ofa-train-step (one-hot labels, no smoothing)
        and compares the loss with the stored one; exits 1 beyond 1e-4.
    /usr/bin/python3 bench/torch_train.py --bench [--resolutions 64,128] [--batch 32]
            [--subnets 2] [--steps 5] [--threads 2]
        Times the sandwich step (largest + smallest + --subnets random subnets) on random
        data and prints one JSON object per resolution:
        {"r","batch","subnets_per_step","images_per_sec","s_per_step","steps","threads","torch"}
        images_per_sec is batch / seconds per step, the number natgw's
        BenchmarkSandwichStep reports.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_forward as tf  # noqa: E402


def hswish(x):
    return x * F.relu6(x + 3.0) / 6.0


def hsigmoid(x):
    return F.relu6(x + 3.0) / 6.0


def act(name, x):
    return F.relu(x) if name == "relu" else hswish(x)


class Supernet:
    """Shared Parameters and BatchNorm buffers of the checkpoint, run as any subnet."""

    def __init__(self, sd):
        self.p, self.buf = {}, {}
        for k, v in sd.items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                self.buf[k] = v.clone()
            elif not k.endswith("num_batches_tracked"):
                self.p[k] = torch.nn.Parameter(v.clone())

    def bn(self, x, prefix, c, a=None):
        y = F.batch_norm(x, self.buf[prefix + "running_mean"][:c], self.buf[prefix + "running_var"][:c],
                         self.p[prefix + "weight"][:c], self.p[prefix + "bias"][:c], True, 0.1, 1e-5)
        return act(a, y) if a else y

    def forward(self, arch, x):
        P = self.p
        x = self.bn(F.conv2d(x, P["first_conv.conv.weight"], stride=2, padding=1), "first_conv.bn.", 16, "h_swish")
        y = F.conv2d(x, P["blocks.0.conv.depth_conv.conv.weight"], padding=1, groups=16)
        y = self.bn(y, "blocks.0.conv.depth_conv.bn.", 16, "relu")
        y = self.bn(F.conv2d(y, P["blocks.0.conv.point_linear.conv.weight"]), "blocks.0.conv.point_linear.bn.", 16)
        x = x + y
        cin = 16
        for s, (width, first_stride, a, use_se) in enumerate(tf.STAGES):
            for j in range(arch["d"][s]):
                idx = s * tf.BLOCKS_PER_STAGE + j + 1
                k, e = arch["ks"][idx - 1], arch["e"][idx - 1]
                mid = tf.make_divisible(round(cin * e), 8)
                stride = first_stride if j == 0 else 1
                p = "blocks.%d.conv." % idx
                y = F.conv2d(x, P[p + "inverted_bottleneck.conv.conv.weight"][:mid, :cin])
                y = self.bn(y, p + "inverted_bottleneck.bn.bn.", mid, a)
                w = tf.active_depthwise_kernel(P, p + "depth_conv.", mid, k)
                y = F.conv2d(y, w, stride=stride, padding=k // 2, groups=mid)
                y = self.bn(y, p + "depth_conv.bn.bn.", mid, a)
                if use_se:
                    q = p + "depth_conv.se.fc."
                    h = tf.make_divisible(mid // 4, 8)
                    g = y.mean(3, keepdim=True).mean(2, keepdim=True)
                    g = F.relu(F.conv2d(g, P[q + "reduce.weight"][:h, :mid], P[q + "reduce.bias"][:h]))
                    g = hsigmoid(F.conv2d(g, P[q + "expand.weight"][:mid, :h], P[q + "expand.bias"][:mid]))
                    y = y * g
                y = F.conv2d(y, P[p + "point_linear.conv.conv.weight"][:, :mid])
                y = self.bn(y, p + "point_linear.bn.bn.", width)
                x = x + y if j > 0 else y
                cin = width
        x = self.bn(F.conv2d(x, P["final_expand_layer.conv.weight"]), "final_expand_layer.bn.", 960, "h_swish")
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = hswish(F.conv2d(x, P["feature_mix_layer.conv.weight"]))
        return F.linear(x.flatten(1), P["classifier.linear.weight"], P["classifier.linear.bias"])


def optimizer(net, lr):
    decay = [v for k, v in net.p.items() if "bn" not in k and "bias" not in k]
    no_decay = [v for k, v in net.p.items() if "bn" in k or "bias" in k]
    return torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0}],
                           lr=lr, momentum=0.9, nesterov=True)


def random_arch(rng):
    return {"ks": [rng.choice([3, 5, 7]) for _ in range(20)], "e": [rng.choice([3, 4, 6]) for _ in range(20)],
            "d": [rng.choice([2, 3, 4]) for _ in range(5)]}


def sandwich_step(net, opt, x, labels, n_random, rng, kd_ratio=1.0):
    opt.zero_grad(set_to_none=True)
    archs = [tf.uniform_arch(7, 6, 4), tf.uniform_arch(3, 3, 2)] + [random_arch(rng) for _ in range(n_random)]
    soft = None
    total = 0.0
    for i, arch in enumerate(archs):
        logits = net.forward(arch, x)
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        if soft is not None:
            loss = loss + kd_ratio * torch.mean(torch.sum(-soft * F.log_softmax(logits, dim=1), 1))
        loss.backward()
        if i == 0:
            soft = F.softmax(logits.detach(), dim=1)
        total += loss.item()
    opt.step()
    return total / len(archs)


def run_check(sd, fixtures):
    ok = True
    for case_id in ("C1_largest", "C2_smallest", "C3_random"):
        case = json.load(open(os.path.join(fixtures, case_id + ".json")))
        net = Supernet(sd)
        x = torch.from_numpy(np.fromfile(os.path.join(fixtures, case["input"]["file"]), dtype="<f4").reshape(case["input"]["shape"]))
        loss = F.cross_entropy(net.forward(case["config"], x), torch.tensor(case["labels"]))
        d = abs(loss.item() - case["loss"])
        ok = ok and d <= 1e-4
        print("%-12s loss %.7f want %.7f diff %.2g %s" % (case_id, loss.item(), case["loss"], d, "ok" if d <= 1e-4 else "FAIL"))
    return ok


def run_bench(sd, resolutions, batch, n_random, steps, threads):
    torch.set_num_threads(threads)
    for r in resolutions:
        net = Supernet(sd)
        opt = optimizer(net, 0.01)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, r, r, generator=gen)
        labels = torch.randint(0, sd["classifier.linear.weight"].shape[0], (batch,), generator=gen)
        rng = random.Random(0)
        sandwich_step(net, opt, x, labels, n_random, rng)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            sandwich_step(net, opt, x, labels, n_random, rng)
        per = (time.perf_counter() - t0) / steps
        print(json.dumps({"r": r, "batch": batch, "subnets_per_step": 2 + n_random,
                          "images_per_sec": round(batch / per, 2), "s_per_step": round(per, 3),
                          "steps": steps, "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--resolutions", default="64,128")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--subnets", type=int, default=2, help="random subnets per step besides largest and smallest")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fixtures", default=None, help="ofa-parity fixture folder (default from NATGW_SHARED)")
    args = ap.parse_args()
    if not (args.check or args.bench):
        ap.error("give --check and/or --bench")
    parity = args.fixtures or tf.default_fixtures()
    sd = tf.load_state_dict(parity)
    ok = True
    if args.check:
        torch.set_num_threads(1)
        ok = run_check(sd, os.path.join(os.path.dirname(parity), "ofa-train-step"))
    if args.bench:
        run_bench(sd, [int(v) for v in args.resolutions.split(",")], args.batch, args.subnets, args.steps, args.threads)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
