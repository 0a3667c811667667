#!/usr/bin/env bash
# The two baselines a task made by natgw task create is compared with, each trained for the
# same wall-clock seconds the whole task create took (docs/results.md, "The quick preset"):
#   probe: the imported network's new classifier trained alone (a linear probe), and
#   fixed: the imported MobileNetV2 fine-tuned whole,
# each at every resolution R given (MobileNetV2 at R px). Both start from the task's import
# (WORK/imported.safetensors) and train on its data view; each is measured on the test split
# outside natgw (PIL/PyTorch preprocessing, onnxruntime), as scripts/check-claims.sh does.
# Each baseline's steps are fitted so that its whole schedule (warm-up and cosine decay)
# fills SECONDS of wall clock (below); "seconds" in the output is what its run took.
# Usage: bench/quick-baselines.sh WORK DATA TEST_ROOT SECONDS [R...]   (R default: 96 128;
# TEST_ROOT is a data set whose test/ split measures them)
# Prints one JSON line per baseline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
work=$1 data=$2 test=$3 seconds=$4
shift 4
sizes=("$@")
((${#sizes[@]})) || sizes=(96 128)
out="$work/baselines"
mkdir -p "$out" bin
go build -o bin/natgw ./cmd/natgw
go build -o bin/orteval ./bench/orteval
mbv2='"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[2,3,4,3,3,1]'
for r in "${sizes[@]}"; do
	arch="{$mbv2,\"r\":$r}"
	for kind in probe fixed; do
		name="$kind-$r"
		flags=(--fixed "$arch" --lr 0.005)
		if [[ $kind == probe ]]; then flags=(--fixed "$arch" --lr 0.02 --train-only classifier.); fi
		common=(--supernet "$work/imported.safetensors" --data "$data" --resolution "$r" --batch 32 --weight-decay 4e-5
			--dropout 0.2 --crop-scale 0.5 --calib 200 --head-std 0.01 "${flags[@]}")
		# The pace: a run's speed grows over its first epochs (decoding, then warmer caches),
		# so short runs underestimate it. The first guess is STEPS_<kind>_<R> when set (a
		# count an earlier run of this script fitted), else two short runs (40 and 100 steps,
		# their difference at full speed, the rest overhead); a run more than 10 % off
		# SECONDS is run again once with its steps scaled by what it measured.
		wall() {
			local t0=$EPOCHREALTIME
			bin/natgw train "${common[@]}" --max-steps "$1" --out "$out/$name.pace.safetensors" --state "$out/$name.pace.state" >/dev/null 2>&1
			rm -f "$out/$name.pace."*
			python3 -c "print($EPOCHREALTIME - $t0)"
		}
		guess=STEPS_${kind}_$r
		steps=${!guess:-}
		over=15
		if [[ -z $steps ]]; then
			t40=$(wall 40) t100=$(wall 100)
			read -r steps over < <(python3 -c "s = ($t100 - $t40) / 60; o = max(0, $t40 - 40 * s); print(max(10, int(($seconds - o) / s)), int(o))")
		fi
		for try in 1 2; do
			rm -f "$out/$name.state" # a fresh run, never a resumed one
			t0=$SECONDS
			bin/natgw train "${common[@]}" --max-steps "$steps" --out "$out/$name.safetensors" --state "$out/$name.state" >"$out/$name.train.json" 2>"$out/$name.train.log"
			took=$((SECONDS - t0))
			((try == 1)) || break
			off=$(python3 -c "print(int(abs($took - $seconds) > 0.1 * $seconds))")
			((off)) || break
			steps=$(python3 -c "o = min($over, $took / 2); print(max(10, int($steps * ($seconds - o) / ($took - o))))")
		done
		bin/natgw export --supernet "$out/$name.safetensors" --arch "$arch" --task baseline --out "$out/$name.onnx" >"$out/$name.export.txt" 2>&1
		/usr/bin/python3 bench/orteval/prep.py "$out/$name.onnx" "$test" test | bin/orteval --model "$out/$name.onnx" >"$out/$name.test.json"
		python3 - "$kind" "$r" "$steps" "$took" "$out/$name" <<'PY'
import json, re, sys
kind, r, steps, took, base = sys.argv[1:]
train = json.loads(open(base + ".train.json").read().strip().splitlines()[-1])
exp = open(base + ".export.txt").read()
print(json.dumps({"baseline": kind, "resolution": int(r), "steps": int(steps), "seconds": int(took),
	"madds": int(re.search(r"(\d+) MAdds", exp).group(1)),
	"val_top1": train["evals"][-1]["accuracy"] if train.get("evals") else None,
	"test_top1": json.load(open(base + ".test.json"))["top1"]}))
PY
	done
done
