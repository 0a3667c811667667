#!/usr/bin/python3
"""PyTorch reference for the OFA MobileNetV3 subnet forward pass (CPU).

What
    Builds an extracted OFA MobileNetV3 subnet as a plain torch.nn.Module
    (nn.Conv2d / nn.BatchNorm2d / nn.Linear in eval mode, so PyTorch's normal
    CPU kernels run, as they would for OFA's own extracted subnet) from the
    supernet checkpoint and an arch {"ks": [20], "e": [20], "d": [5], "r": R}.
    The extraction rules are those of shared/fixtures/ofa-parity/README.md:
    first d blocks per stage, leading slices of the middle channels, 7x7
    depthwise kernels reduced through the per-block 7to5 / 5to3 matrices,
    SE hidden width from the active middle width.

    It is a reference tool for natgw's benchmarks, never a runtime dependency
    of the service.

How to run (Debian's python3-torch 1.13, CPU)
    /usr/bin/python3 bench/torch_forward.py --check
        Rebuilds cases A0..A5 of the parity fixtures and compares the logits
        (and the recorded intermediate activations, where present) with the
        stored ones; exits 1 if any max |diff| exceeds 1e-4.
    /usr/bin/python3 bench/torch_forward.py --bench [--threads N] [--arch-file F]
        Times the forward under torch.no_grad() for the smallest (ks3 e3 d2),
        a middle (ks5 e4 d3) and the largest (ks7 e6 d4) subnet, or for the
        arch in F, at resolutions 128/160/224 and batch 1/16. Prints one JSON
        object per line on stdout:
        {"arch","r","batch","ms_median","ms_p10","ms_p90","runs","threads","torch"}
    /usr/bin/python3 bench/torch_forward.py --export-onnx DIR [--onnx-r R]
        Writes torch.onnx.export files (opset 13, dynamic batch, input "input",
        output "logits", constant folding) for the three subnets at R (default
        224) as DIR/torch_<arch>_r<R>.onnx, and compares each graph's node-type
        histogram with the fixture case of the same config, where there is one.

    The fixture folder defaults to $NATGW_SHARED/fixtures/ofa-parity, with
    NATGW_SHARED defaulting to ../shared relative to the repository root;
    --fixtures overrides it. The --arch-file JSON takes {"ks","e","d"} and an
    optional "r" (or a fixture case JSON with "config" and "resolution");
    with "r" only that resolution is timed.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import Counter, OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CHECKPOINT = "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"
CASES = ["A0_smallest", "A1_largest", "A2_uniform_k5_e4_d3", "A3_random", "A4_random", "A5_random"]
TOLERANCE = 1e-4

# Supernet layout (OFA MobileNetV3, width 1.0): per stage (width, first stride, act, SE).
STAGES = [
    (24, 2, "relu", False),
    (40, 2, "relu", True),
    (80, 2, "h_swish", False),
    (112, 1, "h_swish", True),
    (160, 2, "h_swish", True),
]
BLOCKS_PER_STAGE = 4
N_BLOCKS = len(STAGES) * BLOCKS_PER_STAGE

BENCH_ARCHS = OrderedDict([
    ("smallest", (3, 3, 2)),
    ("middle", (5, 4, 3)),
    ("largest", (7, 6, 4)),
])
BENCH_RESOLUTIONS = [128, 160, 224]
BENCH_BATCHES = [1, 16]


def make_divisible(v, divisor=8, min_value=None):
    """OFA's make_divisible: round to the nearest multiple, never below 90% of v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def uniform_arch(ks, e, d, r=None):
    arch = {"ks": [ks] * N_BLOCKS, "e": [e] * N_BLOCKS, "d": [d] * len(STAGES)}
    if r is not None:
        arch["r"] = r
    return arch


def validate_arch(arch):
    ks, e, d = arch.get("ks"), arch.get("e"), arch.get("d")
    if not (isinstance(ks, list) and len(ks) == N_BLOCKS and all(k in (3, 5, 7) for k in ks)):
        raise ValueError("arch ks must be %d values in {3,5,7}" % N_BLOCKS)
    if not (isinstance(e, list) and len(e) == N_BLOCKS and all(x in (3, 4, 6) for x in e)):
        raise ValueError("arch e must be %d values in {3,4,6}" % N_BLOCKS)
    if not (isinstance(d, list) and len(d) == len(STAGES) and all(x in (2, 3, 4) for x in d)):
        raise ValueError("arch d must be %d values in {2,3,4}" % len(STAGES))


# ---------------------------------------------------------------- modules


class HSwish(nn.Module):
    def forward(self, x):
        return x * F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    def forward(self, x):
        return F.relu6(x + 3.0) / 6.0


def activation(name):
    return nn.ReLU() if name == "relu" else HSwish()


def global_avg_pool(x):
    # Mean over W then H, as OFA does (it also gives the two ReduceMean nodes in ONNX).
    return x.mean(3, keepdim=True).mean(2, keepdim=True)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = HSigmoid()

    def forward(self, x):
        y = global_avg_pool(x)
        y = self.gate(self.expand(self.relu(self.reduce(y))))
        return x * y


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    layers = OrderedDict([
        ("conv", nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)),
        ("bn", nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)),
    ])
    if act is not None:
        layers["act"] = activation(act)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Inverted bottleneck: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1, optional identity add."""

    def __init__(self, cin, mid, cout, k, stride, act, se_hidden, expand, residual):
        super().__init__()
        self.expand = conv_bn(cin, mid, 1, act=act) if expand else None
        self.depthwise = conv_bn(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_hidden) if se_hidden else None
        self.project = conv_bn(mid, cout, 1)
        self.residual = residual

    def forward(self, x):
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return y + x if self.residual else y


class Subnet(nn.Module):
    def __init__(self, first_conv, blocks, stage_ends, final_expand, feature_mix, classifier):
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.ModuleList(blocks)
        self.stage_ends = stage_ends  # index in self.blocks of each stage's last active block
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.classifier = classifier

    def forward(self, x):
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def head(self, x):
        x = global_avg_pool(self.final_expand(x))
        x = self.feature_mix(x)
        return self.classifier(x.view(x.size(0), -1))

    def intermediates(self, x):
        """Named activations as recorded in the parity fixtures."""
        out = OrderedDict()
        x = self.first_conv(x)
        out["first_conv"] = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 0:
                out["block0"] = x
            if i in self.stage_ends:
                out["stage%d" % (self.stage_ends.index(i) + 1)] = x
        x = global_avg_pool(self.final_expand(x))
        out["final_expand_pooled"] = x
        x = self.feature_mix(x)
        out["feature_mix"] = x
        out["logits"] = self.classifier(x.view(x.size(0), -1))
        return out


# ---------------------------------------------------------------- extraction


def _copy(param, value):
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError("shape mismatch: %s vs %s" % (tuple(param.shape), tuple(value.shape)))
    param.data.copy_(value)


def _load_bn(bn, sd, prefix, n):
    _copy(bn.weight, sd[prefix + "weight"][:n])
    _copy(bn.bias, sd[prefix + "bias"][:n])
    _copy(bn.running_mean, sd[prefix + "running_mean"][:n])
    _copy(bn.running_var, sd[prefix + "running_var"][:n])


def active_depthwise_kernel(sd, prefix, mid, k):
    """Centre-crop the stored 7x7 kernel through the block's transform matrices (OFA's get_active_filter)."""
    w = sd[prefix + "conv.conv.weight"][:mid]
    if k == 7:
        return w.clone()
    for src, dst in ((7, 5), (5, 3)):
        start = (src - dst) // 2
        crop = w[:, :, start:start + dst, start:start + dst].contiguous()
        flat = crop.view(-1, dst * dst)
        flat = F.linear(flat, sd[prefix + "conv.%dto%d_matrix" % (src, dst)])
        w = flat.view(mid, 1, dst, dst)
        if dst == k:
            break
    return w


def build_subnet(sd, arch):
    """Extracts the subnet for arch from the supernet state dict, in eval mode."""
    validate_arch(arch)
    first_conv = conv_bn(3, 16, 3, 2, act="h_swish")
    _copy(first_conv.conv.weight, sd["first_conv.conv.weight"])
    _load_bn(first_conv.bn, sd, "first_conv.bn.", 16)

    # Block 0: fixed depthwise-separable block with expand ratio 1.
    b0 = MBConv(16, 16, 16, 3, 1, "relu", 0, expand=False, residual=True)
    _copy(b0.depthwise.conv.weight, sd["blocks.0.conv.depth_conv.conv.weight"])
    _load_bn(b0.depthwise.bn, sd, "blocks.0.conv.depth_conv.bn.", 16)
    _copy(b0.project.conv.weight, sd["blocks.0.conv.point_linear.conv.weight"])
    _load_bn(b0.project.bn, sd, "blocks.0.conv.point_linear.bn.", 16)

    blocks, stage_ends = [b0], []
    cin = 16
    for s, (width, first_stride, act, use_se) in enumerate(STAGES):
        for j in range(arch["d"][s]):
            idx = s * BLOCKS_PER_STAGE + j + 1  # supernet block index (1..20)
            k, e = arch["ks"][idx - 1], arch["e"][idx - 1]
            mid = make_divisible(round(cin * e), 8)
            se_hidden = make_divisible(mid // 4, 8) if use_se else 0
            stride = first_stride if j == 0 else 1
            block = MBConv(cin, mid, width, k, stride, act, se_hidden, expand=True, residual=j > 0)
            p = "blocks.%d.conv." % idx
            _copy(block.expand.conv.weight, sd[p + "inverted_bottleneck.conv.conv.weight"][:mid, :cin])
            _load_bn(block.expand.bn, sd, p + "inverted_bottleneck.bn.bn.", mid)
            _copy(block.depthwise.conv.weight, active_depthwise_kernel(sd, p + "depth_conv.", mid, k))
            _load_bn(block.depthwise.bn, sd, p + "depth_conv.bn.bn.", mid)
            if use_se:
                q = p + "depth_conv.se.fc."
                _copy(block.se.reduce.weight, sd[q + "reduce.weight"][:se_hidden, :mid])
                _copy(block.se.reduce.bias, sd[q + "reduce.bias"][:se_hidden])
                _copy(block.se.expand.weight, sd[q + "expand.weight"][:mid, :se_hidden])
                _copy(block.se.expand.bias, sd[q + "expand.bias"][:mid])
            _copy(block.project.conv.weight, sd[p + "point_linear.conv.conv.weight"][:, :mid])
            _load_bn(block.project.bn, sd, p + "point_linear.bn.bn.", width)
            blocks.append(block)
            cin = width
        stage_ends.append(len(blocks) - 1)

    final_expand = conv_bn(160, 960, 1, act="h_swish")
    _copy(final_expand.conv.weight, sd["final_expand_layer.conv.weight"])
    _load_bn(final_expand.bn, sd, "final_expand_layer.bn.", 960)

    feature_mix = nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(960, 1280, 1, bias=False)),
        ("act", HSwish()),
    ]))
    _copy(feature_mix.conv.weight, sd["feature_mix_layer.conv.weight"])

    n_classes = sd["classifier.linear.weight"].shape[0]
    classifier = nn.Linear(1280, n_classes)
    _copy(classifier.weight, sd["classifier.linear.weight"])
    _copy(classifier.bias, sd["classifier.linear.bias"])

    net = Subnet(first_conv, blocks, stage_ends, final_expand, feature_mix, classifier)
    return net.eval()


def load_state_dict(fixtures):
    return torch.load(os.path.join(fixtures, CHECKPOINT), map_location="cpu")["state_dict"]


def count_params(net):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ---------------------------------------------------------------- modes


def read_bin(path, shape):
    data = np.fromfile(path, dtype="<f4")
    return torch.from_numpy(data.reshape(shape).copy())


def run_check(sd, fixtures):
    ok = True
    for case_id in CASES:
        case = json.load(open(os.path.join(fixtures, case_id + ".json")))
        arch = dict(case["config"], r=case["resolution"])
        net = build_subnet(sd, arch)
        x = read_bin(os.path.join(fixtures, case["input"]["file"]), case["input"]["shape"])
        with torch.no_grad():
            acts = net.intermediates(x)
        want = read_bin(os.path.join(fixtures, case["logits"]["file"]), case["logits"]["shape"])
        diff = (acts["logits"] - want).abs().max().item()
        params = count_params(net)
        good = diff <= TOLERANCE and params == case["params"]
        ok = ok and good
        print("%-20s r=%-3d logits max|diff|=%.3g params=%d (want %d) %s"
              % (case_id, case["resolution"], diff, params, case["params"], "ok" if good else "FAIL"))
        for inter in case.get("intermediates", []):
            ref = read_bin(os.path.join(fixtures, inter["file"]), inter["shape"])
            d = (acts[inter["name"]] - ref).abs().max().item()
            good = d <= TOLERANCE
            ok = ok and good
            print("    %-20s max|diff|=%.3g %s" % (inter["name"], d, "ok" if good else "FAIL"))
    print("check: %s" % ("all cases within %g" % TOLERANCE if ok else "FAILED"))
    return ok


def time_forward(net, x, target_s):
    """Median-friendly timing: warm-up, then enough runs to fill about target_s."""
    with torch.no_grad():
        warm_start = time.perf_counter()
        warm = 0
        while warm < 3 or (time.perf_counter() - warm_start < 0.3 and warm < 20):
            net(x)
            warm += 1
        per_run = (time.perf_counter() - warm_start) / warm
        runs = int(min(500, max(5, math.ceil(target_s / max(per_run, 1e-6)))))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def run_bench(sd, archs, resolutions, threads, target_s):
    torch.set_num_threads(threads)
    load1, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load1 > cpus:
        # With more runnable tasks than cores, multi-threaded kernels stall at their barriers.
        print("warning: load average %.1f on %d CPUs; timings are contended" % (load1, cpus),
              file=sys.stderr)
    gen = torch.Generator().manual_seed(0)
    for name, arch in archs.items():
        net = build_subnet(sd, arch)
        for r in ([arch["r"]] if "r" in arch else resolutions):
            for batch in BENCH_BATCHES:
                x = torch.randn(batch, 3, r, r, generator=gen)
                times = time_forward(net, x, target_s)
                p10, p90 = np.percentile(times, [10, 90])
                print(json.dumps({
                    "arch": name, "r": r, "batch": batch,
                    "ms_median": round(statistics.median(times), 3),
                    "ms_p10": round(float(p10), 3), "ms_p90": round(float(p90), 3),
                    "runs": len(times), "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                }), flush=True)


def onnx_histogram(path):
    import onnx  # only needed here

    model = onnx.load(path)
    onnx.checker.check_model(model)
    return dict(Counter(n.op_type for n in model.graph.node))


def run_export(sd, archs, default_r, out_dir, fixtures):
    os.makedirs(out_dir, exist_ok=True)
    cases = {}
    for case_id in CASES:
        case = json.load(open(os.path.join(fixtures, case_id + ".json")))
        cases[json.dumps([case["config"], case["resolution"]], sort_keys=True)] = case
    ok = True
    for name, arch in archs.items():
        r = arch.get("r", default_r)
        net = build_subnet(sd, arch)
        path = os.path.join(out_dir, "torch_%s_r%d.onnx" % (name, r))
        x = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0))
        torch.onnx.export(net, x, path, opset_version=13, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        hist = onnx_histogram(path)
        key = json.dumps([{k: arch[k] for k in ("ks", "e", "d")}, r], sort_keys=True)
        case = cases.get(key)
        if case is None:
            note = "no fixture case with this config"
        elif hist == case["onnx"]["op_histogram"]:
            note = "op histogram matches %s" % case["id"]
        else:
            ok = False
            note = "op histogram differs from %s: %s vs %s" % (case["id"], hist, case["onnx"]["op_histogram"])
        print("%s: %d nodes; %s" % (path, sum(hist.values()), note))
    return ok


def default_fixtures():
    here = os.path.dirname(os.path.abspath(__file__))
    root = here
    while root != os.path.dirname(root) and not os.path.exists(os.path.join(root, "go.mod")):
        root = os.path.dirname(root)
    shared = os.environ.get("NATGW_SHARED") or os.path.join(root, "..", "shared")
    if not os.path.isabs(shared):
        shared = os.path.join(root, shared)
    return os.path.normpath(os.path.join(shared, "fixtures", "ofa-parity"))


def load_arch_file(path):
    data = json.load(open(path))
    if "config" in data:  # a fixture case JSON
        data = dict(data["config"], r=data.get("resolution"))
    arch = {k: data[k] for k in ("ks", "e", "d")}
    if data.get("r") is not None:
        arch["r"] = int(data["r"])
    validate_arch(arch)
    return arch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify cases A0..A5 against the fixture logits")
    ap.add_argument("--bench", action="store_true", help="time the forward pass, JSON lines on stdout")
    ap.add_argument("--export-onnx", metavar="DIR", help="write torch.onnx.export files of the three subnets")
    ap.add_argument("--onnx-r", type=int, default=224, help="resolution for --export-onnx (default 224)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--arch-file", help="JSON arch {ks,e,d[,r]} to time/export instead of the three defaults")
    ap.add_argument("--target-s", type=float, default=1.5, help="timed seconds per bench config (default 1.5)")
    ap.add_argument("--fixtures", default=default_fixtures(), help="parity fixture folder")
    args = ap.parse_args()
    if not (args.check or args.bench or args.export_onnx):
        ap.error("nothing to do: give --check, --bench and/or --export-onnx")

    torch.set_num_threads(args.threads)
    sd = load_state_dict(args.fixtures)
    if args.arch_file:
        archs = OrderedDict([(os.path.splitext(os.path.basename(args.arch_file))[0], load_arch_file(args.arch_file))])
    else:
        archs = OrderedDict((n, uniform_arch(*v)) for n, v in BENCH_ARCHS.items())

    ok = True
    if args.check:
        ok = run_check(sd, args.fixtures) and ok
    if args.export_onnx:
        ok = run_export(sd, archs, args.onnx_r, args.export_onnx, args.fixtures) and ok
    if args.bench:
        run_bench(sd, archs, BENCH_RESOLUTIONS, args.threads, args.target_s)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
