#!/usr/bin/env python3
"""PyTorch reference timings for the shapes of internal/cpu's BenchmarkConvForward.

Usage: /usr/bin/python3 bench/cpu_torch.py [--threads 2] [--iters 50]
Prints wall-clock GFLOP/s and GFLOP/s per CPU-second (process time), which stays meaningful
when other work shares the cores.
"""
import argparse
import time

import torch
import torch.nn.functional as F

SHAPES = [  # name, C, H, K, kernel, stride, pad, groups
    ("pw_96to24_64x64", 96, 64, 24, 1, 1, 0, 1),
    ("dw_k7s1_144c_32x32", 144, 32, 144, 7, 1, 3, 144),
    ("dw_k5s2_144c_56x56", 144, 56, 144, 5, 2, 2, 144),
    ("stem_3x3s2_3to16_224", 3, 224, 16, 3, 2, 1, 1),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} mkldnn={torch.backends.mkldnn.is_available()}")
    with torch.no_grad():
        for n in (1, 16):
            for name, c, h, k, f, s, p, g in SHAPES:
                x = torch.randn(n, c, h, h)
                w = torch.randn(k, c // g, f, f)
                b = torch.randn(k)
                oh = (h + 2 * p - f) // s + 1
                flops = 2.0 * n * k * oh * oh * (c // g) * f * f
                run = lambda: F.conv2d(x, w, b, stride=s, padding=p, groups=g)
                for _ in range(5):
                    run()
                iters = max(3, args.iters if n == 1 else args.iters // 8)
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(iters):
                    run()
                t1, c1 = time.perf_counter(), time.process_time()
                wall = (t1 - t0) / iters
                cpu = (c1 - c0) / iters
                print(f"{name}/b{n}\t{wall*1e6:10.0f} us/op\t{flops/wall/1e9:7.2f} GFLOP/s\t{flops/cpu/1e9:7.2f} GFLOP/s-cpu")


if __name__ == "__main__":
    main()
