#!/usr/bin/python3
"""Go vs PyTorch subnet forward: runs natgw's BenchmarkForward and bench/torch_forward.py
--bench on this machine, one after the other, and prints a markdown table of median
milliseconds and the Go/PyTorch ratio (below 1.0: natgw is faster).

    /usr/bin/python3 bench/compare_forward.py [--threads 2] [--benchtime 2s]

Run it on a quiet machine: both sides use all the threads they are given.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def go_bench(benchtime, threads):
    out = subprocess.run(
        ["go", "test", "./supernet", "-run", "^$", "-bench", "BenchmarkForward", "-benchtime", benchtime, "-count", "3", f"-cpu={threads}"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"BenchmarkForward/(\w+)/r(\d+)/b(\d+)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            key = (m.group(1), int(m.group(2)), int(m.group(3)))
            res.setdefault(key, []).append(float(m.group(4)) / 1e6)
    return {k: sorted(v)[len(v) // 2] for k, v in res.items()}


def torch_bench(threads):
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_forward.py"), "--bench", "--threads", str(threads)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            res[(d["arch"], d["r"], d["batch"])] = d["ms_median"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--benchtime", default="2s")
    a = ap.parse_args()
    go = go_bench(a.benchtime, a.threads)
    pt = torch_bench(a.threads)
    print("| subnet | r | batch | natgw ms | PyTorch ms | natgw/PyTorch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in sorted(go, key=lambda k: (["smallest", "middle", "largest"].index(k[0]), k[1], k[2])):
        if key in pt:
            print(f"| {key[0]} | {key[1]} | {key[2]} | {go[key]:.2f} | {pt[key]:.2f} | {go[key] / pt[key]:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
