#!/usr/bin/env bash
# natgw's supernet training step against Once-for-All's own PyTorch code, in the same run:
# the sandwich step (largest, two random, smallest subnets; batch 32; 2 threads) of the OFA
# MobileNetV3 w1.0 supernet at 64 and 128 px, natgw (go test ./trainer -bench SandwichStep)
# and OFA (bench/ofa_train_step.py on ../shared/reference/ofa-src) alternately, ROUNDS times.
# Prints one JSON line per round and resolution with both images/s and their ratio
# (natgw / OFA: above 1.0 natgw trains faster). Needs Debian's python3-torch and
# python3-torchvision (installed when missing).
# Usage: ROUNDS=3 bash bench/train-step.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
shared="$(cd "${NATGW_SHARED:-$root/../shared}" && pwd)"
if ! /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-torchvision >/dev/null
fi
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
go test -c -o "$w/trainer.test" ./trainer
for round in $(seq "${ROUNDS:-3}"); do
	"$w/trainer.test" -test.run '^$' -test.bench SandwichStep -test.benchtime 4x >"$w/go.txt"
	PYTHONPATH="$shared/reference/ofa-src" /usr/bin/python3 bench/ofa_train_step.py --resolutions 64,128 --steps 4 >"$w/ofa.jsonl"
	python3 - "$round" "$w/go.txt" "$w/ofa.jsonl" <<'PY'
import json, re, sys
rnd, gofile, ofafile = sys.argv[1:]
gov = {}
for line in open(gofile):
    m = re.match(r"BenchmarkSandwichStep/r(\d+)_\S+\s+\d+\s+\d+ ns/op\s+([\d.]+) images/s", line)
    if m:
        gov[int(m.group(1))] = float(m.group(2))
for line in open(ofafile):
    o = json.loads(line)
    g = gov.get(o["r"])
    print(json.dumps({"round": int(rnd), "r": o["r"], "natgw_images_per_sec": g, "ofa_images_per_sec": o["images_per_sec"],
                      "natgw_over_ofa": round(g / o["images_per_sec"], 2) if g else None}))
PY
done
