#!/usr/bin/env bash
# Checks the accuracy each shipped model claims against an outside measurement: serve the
# shipped tasks (natgw serve with its defaults), ask /v1/models for each budget, download the
# ONNX file, preprocess the task's test split outside natgw (bench/orteval/prep.py: PIL and
# PyTorch, following the preprocessing in the file's metadata), run it through onnxruntime
# (bench/orteval) and fail when a claim is more than 1 point off.
#   scripts/check-claims.sh [TASK:BUDGET ...]   (default: flowers and cifar10 at 100M and 300M)
# MODELS (default models) is the folder of task folders served; DATA the data set holding
# the test split (default ../shared/data/<the task's dataset>).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
shared="$(cd "${NATGW_SHARED:-$root/../shared}" && pwd)"
tol="${TOLERANCE:-0.01}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
go build -o "$work/natgw" ./cmd/natgw
go build -o "$work/orteval" ./bench/orteval
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
models="${MODELS:-models}"
"$work/natgw" serve --models "$models" --addr "127.0.0.1:$port" --log-level warn --access-log=false >/dev/null 2>"$work/serve.log" &
for _ in $(seq 1 300); do
	curl -sf "$url/v2/health/ready" >/dev/null && break
	sleep 0.2
done
curl -sf "$url/v2/health/ready" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }

checks=("$@")
[[ ${#checks[@]} -gt 0 ]] || checks=(flowers:100M flowers:300M cifar10:100M cifar10:300M)
fail=0
for c in "${checks[@]}"; do
	t=${c%%:*} b=${c#*:}
	m="$(curl -sf "$url/v1/models?task=$t&madds=$b")"
	read -r id claim res <<<"$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(m["id"], m["accuracy"].get("test_top1", "none"), m["resolution"])' "$m")"
	ds="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dataset"])' "$models/$t/task.json")"
	data="${DATA:-$shared/data/$ds}"
	if [[ $claim == none ]]; then
		echo "$t@$b: the model claims no test accuracy: run natgw evaluate first" >&2
		fail=1
		continue
	fi
	curl -sf -o "$work/m.onnx" "$url/v1/models/$id/model.onnx"
	got="$(/usr/bin/python3 bench/orteval/prep.py "$work/m.onnx" "$data" test | "$work/orteval" --model "$work/m.onnx")"
	measured="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["top1"])' "$got")"
	verdict="$(python3 -c 'import sys; c,m,t=map(float,sys.argv[1:]); print("ok" if abs(c-m)<=t else "FAIL")' "$claim" "$measured" "$tol")"
	printf '{"task":"%s","budget":"%s","id":"%s","resolution":%s,"claimed_test_top1":%s,"outside_onnxruntime_top1":%s,"verdict":"%s"}\n' \
		"$t" "$b" "${id:0:16}" "$res" "$claim" "$measured" "$verdict"
	[[ $verdict == ok ]] || fail=1
done
exit $fail
