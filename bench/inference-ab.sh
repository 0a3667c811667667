#!/usr/bin/env bash
# A/B of the gateway's inference settings on one shipped model, the configurations
# interleaved in one run because this machine's speed drifts over minutes. Per configuration:
#  - batch 1, 3 times: bench/ortrun -pair alternates one in-process Run with one /v2 infer
#    request (binary tensor extension, one raw keep-alive socket) 300 times and reports both
#    p50s and the median of the per-pair ratios; then bench/rawclient.py alone as a check;
#  - the in-process ceiling of batching: ortrun -ceiling 16 (16 batch-1 runs against one
#    batch-16 run of the same images, alternating; median gain in images/s);
#  - 16 clients' throughput through bench/loadgen, and first (fresh_c16) the same load on the
#    fresh gateway, whose session and batch sizes all start cold.
# The in-process side runs with the same runtime setting the gateway gives itself
# (GODEBUG=schedtrace, package internal/sysmon), so that the ratio is the gateway's own cost.
# Usage: CONFS="never run pin1 nb-never nb-run nb-pin1" TASK=flowers MADDS=300M bash bench/inference-ab.sh
#   never/run/always: 2 intra-op threads with that spin policy; pin1: 1 thread pinned to CPU 1
#   (--ort-cpus 1; ortrun under taskset -c 1); nb-*: the same with --max-batch 1;
#   run-nosysmon: run with the gateway's runtime left as it is (NATGW_SYSMON=default).
#   run-nowarm: run without the warm-up of each new session (NATGW_WARM_BATCH=0).
#   floor-inline, floor-locked: not the gateway but bench/floorserve, the least an HTTP
#   inference server can do (batch 1 pairs only): the floor under the gateway's ratio here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
w="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$w"' EXIT
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
task="${TASK:-flowers}" madds="${MADDS:-300M}"
go build -o "$w/natgw" ./cmd/natgw
go build -o "$w/loadgen" ./bench/loadgen
go build -o "$w/ortrun" ./bench/ortrun
go build -o "$w/floorserve" ./bench/floorserve
mkdir -p "$w/models" && cp -a "models/$task" "$w/models/$task"
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
sysmon=schedtrace=2147483647 # internal/sysmon.Setting
p50() { grep -o '"p50_ms":[0-9.]*' | cut -d: -f2; }

ready() { for _ in $(seq 200); do curl -sf "$url/$1" >/dev/null && return; sleep 0.1; done; return 1; }

# The model under test, its ONNX file and a one-image request body, from a gateway with defaults.
"$w/natgw" serve --models "$w/models" --addr "127.0.0.1:$port" --log-level warn 2>"$w/serve.log" &
gw=$!
ready v2/health/ready
model=$(curl -sf "$url/v1/models?task=$task&madds=$madds")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$model")
r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["resolution"])' "$model")
curl -sf -o "$w/model.onnx" "$url/v1/models/$id/model.onnx"
python3 bench/oipbody.py "$r" "$w"
kill $gw; wait $gw 2>/dev/null || true

# pairs NAME ORTRUN...: batch 1, 3 times: ortrun -pair, then the lean client alone.
pairs() {
  local name=$1 k raw
  shift
  for k in 1 2 3; do
    echo "{\"conf\": \"$name\", \"pairs\": $("$@" -n 300 -input "$w/req1.bin" -header-len "$(cat "$w/req1.bin.len")" -pair "$url/v2/models/$id/infer")}"
    raw=$(/usr/bin/python3 bench/rawclient.py 127.0.0.1 "$port" "/v2/models/$id/infer" "$w/req1.bin" "$(cat "$w/req1.bin.len")" 150 | p50)
    echo "{\"conf\": \"$name\", \"gateway_raw_client_p50_ms\": $raw}"
  done
}

# floor NAME MODE: bench/floorserve in place of the gateway, batch-1 pairs only.
floor() {
  GODEBUG=$sysmon "$w/floorserve" -model "$w/model.onnx" -addr "127.0.0.1:$port" -mode "$2" -threads 2 -spin run 2>"$w/floor.log" &
  local pid=$!
  for _ in $(seq 200); do curl -s -o /dev/null "$url/" && break; sleep 0.1; done
  pairs "$1" env "GODEBUG=$sysmon" "$w/ortrun" -model "$w/model.onnx" -threads 2 -spin run
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# conf NAME SPIN THREADS ORTRUN_PREFIX SERVE_FLAGS...
conf() {
  local name=$1 spin=$2 threads=$3 prefix=$4
  shift 4
  env ${GWENV:-} "$w/natgw" serve --models "$w/models" --addr "127.0.0.1:$port" --access-log=false --log-level warn \
    --ort-threads "$threads" --ort-spin "$spin" "$@" 2>"$w/serve.log" &
  local pid=$!
  ready v2/health/ready
  curl -sf "$url/v1/models?task=$task&madds=$madds" >/dev/null # a fresh gateway knows a model id once it resolved it
  local lg=("$w/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$w/req1.bin" -header "Inference-Header-Content-Length: $(cat "$w/req1.bin.len")")
  local ort=(env "GODEBUG=$sysmon" $prefix "$w/ortrun" -model "$w/model.onnx" -threads "$threads" -spin "$spin")
  # A fresh gateway's first burst: the session is built by the first of these requests, and
  # each batch size's first run is paid here (what --warm-batch moves to the session's load).
  echo "{\"conf\": \"$name\", \"fresh_c16\": $("${lg[@]}" -n 1000 -c 16 -warmup 0)}"
  "${lg[@]}" -n 50 -c 1 -warmup 10 >/dev/null
  pairs "$name" "${ort[@]}"
  echo "{\"conf\": \"$name\", \"in_process_ceiling\": $("${ort[@]}" -n 15 -ceiling 16)}"
  echo "{\"conf\": \"$name\", \"c16\": $("${lg[@]}" -n 1000 -c 16 -warmup 300)}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for c in ${CONFS:-never run pin1 nb-never nb-run nb-pin1}; do
  case $c in
    never|run|always) conf "$c" "$c" 2 "" ;;
    run-nosysmon) GWENV=NATGW_SYSMON=default conf "$c" run 2 "" ;;
    run-nowarm) GWENV=NATGW_WARM_BATCH=0 conf "$c" run 2 "" ;;
    pin1) conf pin1 run 1 "taskset -c 1" --ort-cpus 1 ;;
    nb-never|nb-run|nb-always) conf "$c" "${c#nb-}" 2 "" --max-batch 1 ;;
    nb-pin1) conf nb-pin1 run 1 "taskset -c 1" --ort-cpus 1 --max-batch 1 ;;
    floor-inline|floor-locked) floor "$c" "${c#floor-}" ;;
    *) echo "unknown configuration $c" >&2; exit 2 ;;
  esac
done
