#!/usr/bin/env bash
# Gateway benchmarks over loopback, load from a second process (bench/loadgen):
#  1. warm GET /v1/models p50/p99 (target p99 <= 2 ms): 1, 4 and 16 clients in a closed
#     loop, the same against bench/floorserve (net/http with nothing to do: the floor), then
#     fixed request rates (RATES) in an open loop
#  2. POST /v2/models/{id}/infer batch-1 latency vs in-process onnxruntime Run of the same
#     file (bench/ortrun), same threads (target <= 1.10x)
#  3. /v2 infer throughput at concurrency 16 with dynamic batching vs --max-batch 1 (target >= 1.5x)
# The served task is built by bench/mktask from the OFA parity checkpoint (synthetic
# accuracies: serving cost does not depend on them). Prints JSON lines.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
shared="${NATGW_SHARED:-$root/../shared}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
madds="${MADDS:-150M}"   # TASK, MADDS, THREADS, SPIN, ORT_CPUS and SERVE_FLAGS (extra natgw serve flags) are read from the environment
threads="${THREADS:-2}"
spin="${SPIN:-run}"      # onnxruntime spin policy of the gateway and of the in-process baseline
# ORT_CPUS=1: the gateway runs inference on CPU 1 and the rest on the others (--ort-cpus);
# the in-process baseline then runs on the same CPUs (taskset).
ortpin=()
if [[ -n ${ORT_CPUS:-} ]]; then ortpin=(taskset -c "$ORT_CPUS"); fi

go build -o "$work/natgw" ./cmd/natgw
go build -o "$work/loadgen" ./bench/loadgen
go build -o "$work/ortrun" ./bench/ortrun
go build -o "$work/floorserve" ./bench/floorserve
# TASK=name serves the shipped task of that name from ./models instead of the synthetic one.
task="${TASK:-bench}"
if [[ $task == bench ]]; then
  go run ./bench/mktask --supernet "$shared/fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth" --out "$work/models/bench" >/dev/null
else
  mkdir -p "$work/models" && cp -a "models/$task" "$work/models/$task"
fi

port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
start() { # start the gateway with extra flags, wait until ready
  local cpus=() # inference pinning, except when PIN already confines the whole gateway
  if [[ -n ${ORT_CPUS:-} && -z ${PIN:-} ]]; then cpus=(--ort-cpus "$ORT_CPUS"); fi
  ${PIN:-} "$work/natgw" serve --models "$work/models" --addr "127.0.0.1:$port" --access-log=false --log-level warn \
    --ort-threads "$threads" --ort-spin "$spin" "${cpus[@]}" ${SERVE_FLAGS:-} "$@" 2>"$work/serve.log" &
  for _ in $(seq 1 200); do
    curl -sf "$url/v2/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  cat "$work/serve.log" >&2; return 1
}
stop() { kill "$(jobs -p)" 2>/dev/null || true; wait 2>/dev/null || true; }

start
model="$(curl -sf "$url/v1/models?task=$task&madds=$madds")"
id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$model")"
r="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["resolution"])' "$model")"
curl -sf -o "$work/model.onnx" "$url/v1/models/$id/model.onnx"
python3 bench/oipbody.py "$r" "$work"
echo "{\"model\": $model}" | head -c 400; echo
for c in 1 4 16; do
  echo "warm /v1/models, $c clients:"
  "$work/loadgen" -url "$url/v1/models?task=$task&madds=$madds" -n 20000 -c "$c" -warmup 200
done
# The floor under those figures: bench/floorserve, net/http answering the same bytes with no
# work at all, measured the same way on the same cores.
stop
echo "$model" > "$work/answer.json"
"$work/floorserve" -static "$work/answer.json" -addr "127.0.0.1:$port" 2>/dev/null &
for _ in $(seq 1 200); do curl -sf "$url/" >/dev/null && break; sleep 0.1; done
for c in 1 4 16; do
  echo "floor: net/http answering the same bytes, $c clients:"
  "$work/loadgen" -url "$url/v1/models?task=$task&madds=$madds" -n 20000 -c "$c" -warmup 200
done
stop
start
curl -sf "$url/v1/models?task=$task&madds=$madds" >/dev/null
# Open loop: requests on a fixed schedule from up to 16 connections, latency from each
# request's scheduled time; the tail at a load the server sustains, not at saturation.
for rate in ${RATES:-2000 5000 10000 20000}; do
  echo "warm /v1/models, $rate requests/s on a schedule, up to 16 connections, shared cores:"
  "$work/loadgen" -url "$url/v1/models?task=$task&madds=$madds" -n $((rate * 4)) -c 16 -rate "$rate" -warmup 200
done
# The same with the gateway and the load generator each on its own core, as on two hosts:
# sharing both cores, the kernel's time slices between the two processes set the tail.
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
  stop
  PIN="taskset -c 1" start
  curl -sf "$url/v1/models?task=$task&madds=$madds" >/dev/null
  for c in 1 4 16; do
    echo "warm /v1/models, $c clients, gateway on CPU 1, load generator on CPU 0:"
    taskset -c 0 "$work/loadgen" -url "$url/v1/models?task=$task&madds=$madds" -n 20000 -c "$c" -warmup 200
  done
  # A second, independent load generator when installed (apt install wrk): one C event loop.
  if command -v wrk >/dev/null; then
    echo "warm /v1/models, 16 connections, wrk, gateway on CPU 1, wrk on CPU 0:"
    taskset -c 0 wrk -t1 -c16 -d5s --latency "$url/v1/models?task=$task&madds=$madds" | grep -E "Requests/sec|  (50|90|99)%"
  fi
  stop
  start
  curl -sf "$url/v1/models?task=$task&madds=$madds" >/dev/null
fi
echo "/v2 infer batch 1, one client:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.json" -content-type application/json -n 300 -c 1 -warmup 20
echo "/v2 infer batch 1, one client, binary tensor extension:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.bin" -header "Inference-Header-Content-Length: $(cat "$work/req1.bin.len")" -n 300 -c 1 -warmup 20
for p in always never run; do
  echo "in-process onnxruntime Run, batch 1, spin policy $p:"
  "${ortpin[@]}" "$work/ortrun" -model "$work/model.onnx" -n 300 -batch 1 -threads "$threads" -spin "$p"
done
hdrlen="Inference-Header-Content-Length: $(cat "$work/req1.bin.len")"
# This machine's speed drifts over minutes by more than the gap being measured, so the ratio
# is also taken over alternating short pairs (gateway, then in-process), median of the pairs.
echo "/v2 infer batch 1, binary, vs in-process Run (spin policy $spin, as the gateway), ${PAIRS:-7} alternating pairs of 100:"
for _ in $(seq "${PAIRS:-7}"); do
  g=$("$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.bin" -header "$hdrlen" -n 100 -c 1 -warmup 10)
  o=$("${ortpin[@]}" "$work/ortrun" -model "$work/model.onnx" -n 100 -batch 1 -threads "$threads" -spin "$spin")
  echo "$g"$'\t'"$o"
done | python3 -c '
import json, statistics, sys
r = []
for line in sys.stdin:
    g, o = (json.loads(x) for x in line.split("\t"))
    r.append(g["p50_ms"] / o["p50_ms"])
    print(json.dumps({"gateway_p50_ms": g["p50_ms"], "in_process_p50_ms": o["p50_ms"], "ratio": round(r[-1], 3)}))
print(json.dumps({"pairs": len(r), "median_ratio": round(statistics.median(r), 3), "min": round(min(r), 3), "max": round(max(r), 3)}))
'
echo "/v2 infer, 16 clients, dynamic batching (max batch 16), JSON:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.json" -content-type application/json -n 1500 -c 16 -warmup 300
echo "/v2 infer, 16 clients, dynamic batching (max batch 16), binary:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.bin" -header "$hdrlen" -n 1500 -c 16 -warmup 300
stop
start --max-batch 1
curl -sf "$url/v1/models?task=$task&madds=$madds" >/dev/null
echo "/v2 infer, 16 clients, no batching (max batch 1), JSON:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.json" -content-type application/json -n 1500 -c 16 -warmup 300
echo "/v2 infer, 16 clients, no batching (max batch 1), binary:"
"$work/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$work/req1.bin" -header "$hdrlen" -n 1500 -c 16 -warmup 300
stop
