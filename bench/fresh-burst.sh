#!/usr/bin/env bash
# A fresh gateway's first burst, with and without the warm-up of each new inference session
# (--warm-batch): ROUNDS times, alternating, a fresh gateway gets one request for a shipped
# model, which builds its session (timed: "first"), then a burst of N requests from 16
# clients with no warm-up of the load generator, so that the first onnxruntime run at
# every batch size falls in the measurement ("burst_c16").
# Prints one JSON line per gateway. Usage: TASK=flowers MADDS=300M ROUNDS=3 bash bench/fresh-burst.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
w="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$w"' EXIT
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
task="${TASK:-flowers}" madds="${MADDS:-300M}" n="${N:-1000}"
go build -o "$w/natgw" ./cmd/natgw
go build -o "$w/loadgen" ./bench/loadgen
mkdir -p "$w/models" && cp -a "models/$task" "$w/models/$task"
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
burst() { # burst LABEL WARM_BATCH
  "$w/natgw" serve --models "$w/models" --addr "127.0.0.1:$port" --access-log=false --log-level warn --warm-batch "$2" 2>"$w/serve.log" &
  local pid=$! model id r
  for _ in $(seq 200); do curl -sf "$url/v2/health/ready" >/dev/null && break; sleep 0.1; done
  model=$(curl -sf "$url/v1/models?task=$task&madds=$madds")
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$model")
  r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["resolution"])' "$model")
  [[ -f $w/req1.bin ]] || python3 bench/oipbody.py "$r" "$w"
  local lg=("$w/loadgen" -url "$url/v2/models/$id/infer" -method POST -body "$w/req1.bin" -header "Inference-Header-Content-Length: $(cat "$w/req1.bin.len")")
  # One request alone builds the session (and warms it), then the burst.
  echo "{\"conf\": \"$1\", \"first\": $("${lg[@]}" -n 1 -c 1 -warmup 0), \"burst_c16\": $("${lg[@]}" -n "$n" -c 16 -warmup 0)}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for _ in $(seq "${ROUNDS:-3}"); do
  burst warm -1
  burst nowarm 0
done
