#!/usr/bin/env bash
# A/B of the gateway's inference settings on one shipped model, the configurations
# interleaved in one run because this machine's speed drifts over minutes. Per configuration:
# /v2 infer batch-1 p50 (binary tensor extension, one client) against in-process Run with the
# same settings (bench/ortrun), 3 alternating pairs, the gateway measured through bench/loadgen
# and through bench/rawclient.py (no client library); then 16 clients' throughput.
# Usage: CONFS="never run pin1 nb-never nb-run nb-pin1" TASK=flowers MADDS=300M bash bench/inference-ab.sh
#   never/run/always: 2 intra-op threads with that spin policy; pin1: 1 thread pinned to CPU 1
#   (--ort-cpus 1; ortrun under taskset -c 1); nb-*: the same with --max-batch 1.
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
mkdir -p "$w/models" && cp -a "models/$task" "$w/models/$task"
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
p50() { grep -o '"p50_ms":[0-9.]*' | cut -d: -f2; }

# conf NAME SPIN THREADS ORTRUN_PREFIX SERVE_FLAGS...
conf() {
  local name=$1 spin=$2 threads=$3 prefix=$4
  shift 4
  "$w/natgw" serve --models "$w/models" --addr "127.0.0.1:$port" --access-log=false --log-level warn \
    --ort-threads "$threads" --ort-spin "$spin" "$@" 2>"$w/serve.log" &
  local pid=$! model id r
  for _ in $(seq 200); do curl -sf "$url/v2/health/ready" >/dev/null && break; sleep 0.1; done
  model=$(curl -sf "$url/v1/models?task=$task&madds=$madds")
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$model")
  r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["resolution"])' "$model")
  [[ -f $w/model.onnx ]] || curl -sf -o "$w/model.onnx" "$url/v1/models/$id/model.onnx"
  [[ -f $w/req1.bin ]] || python3 bench/oipbody.py "$r" "$w"
  local lg=("$w/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$w/req1.bin" -header "Inference-Header-Content-Length: $(cat "$w/req1.bin.len")")
  "${lg[@]}" -n 50 -c 1 -warmup 10 >/dev/null
  local g o
  for _ in 1 2 3; do
    g=$("${lg[@]}" -n 150 -c 1 -warmup 10 | p50)
    raw=$(/usr/bin/python3 bench/rawclient.py 127.0.0.1 "$port" "/v2/models/$id/infer" "$w/req1.bin" "$(cat "$w/req1.bin.len")" 150 | p50)
    o=$($prefix "$w/ortrun" -model "$w/model.onnx" -n 150 -batch 1 -threads "$threads" -spin "$spin" | p50)
    echo "{\"conf\": \"$name\", \"gateway_p50_ms\": $g, \"gateway_raw_client_p50_ms\": $raw, \"in_process_p50_ms\": $o, \"ratio\": $(python3 -c "print(round($g / $o, 3))"), \"ratio_raw_client\": $(python3 -c "print(round($raw / $o, 3))")}"
  done
  echo "{\"conf\": \"$name\", \"c16\": $("${lg[@]}" -n 1000 -c 16 -warmup 50)}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for c in ${CONFS:-never run pin1 nb-never nb-run nb-pin1}; do
  case $c in
    never|run|always) conf "$c" "$c" 2 "" ;;
    pin1) conf pin1 run 1 "taskset -c 1" --ort-cpus 1 ;;
    nb-never|nb-run|nb-always) conf "$c" "${c#nb-}" 2 "" --max-batch 1 ;;
    nb-pin1) conf nb-pin1 run 1 "taskset -c 1" --ort-cpus 1 --max-batch 1 ;;
    *) echo "unknown configuration $c" >&2; exit 2 ;;
  esac
done
