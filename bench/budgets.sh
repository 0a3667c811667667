#!/usr/bin/env bash
# Budgets answered at request speed (issue "on-demand means now"), as a newcomer sees it:
# natgw built from this checkout, serving the shipped tasks with its defaults (no Redis).
# Per round:
#  1. a fresh gateway: time to ready; each task asked N never-asked budgets log-spaced over
#     20M..600M MAdds, one at a time (p50/p99 per request, every answer fits its budget, the
#     accuracy models are chosen by never falls as the budget rises); the same budgets
#     again, willing to wait for the background work they started (Prefer: wait); then a
#     warm budget asked WARM times by one client (p50/p99);
#  2. another fresh gateway: N never-asked budgets in all (half per task) sent at once,
#     then SETTLE seconds of the background work they started; the gateway's peak RSS.
# Prints JSON lines. Usage: ROUNDS=3 N=20 bash bench/budgets.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
w="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$w"' EXIT
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
n="${N:-20}" warm="${WARM:-2000}" settle="${SETTLE:-60}"
go build -trimpath -o "$w/natgw" ./cmd/natgw
go build -o "$w/budgets" ./bench/budgets
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"

start() { # start a fresh gateway on the shipped tasks with its defaults; prints its pid
  "$w/natgw" serve --addr "127.0.0.1:$port" --access-log=false >"$w/serve.out" 2>"$w/serve.log" &
  echo $!
}
ready() { # ready PID: waits for readiness, prints the seconds it took
  local t0=$EPOCHREALTIME
  for _ in $(seq 600); do
    if curl -sf "$url/v2/health/ready" >/dev/null; then
      python3 -c "print(round($EPOCHREALTIME - $t0, 2))"
      return
    fi
    kill -0 "$1" 2>/dev/null || { cat "$w/serve.log" >&2; return 1; }
    sleep 0.05
  done
  cat "$w/serve.log" >&2
  return 1
}
peak() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; } # peak RSS in MiB

for round in $(seq "${ROUNDS:-1}"); do
  pid=$(start)
  echo "{\"round\": $round, \"phase\": \"start\", \"ready_s\": $(ready "$pid")}"
  "$w/budgets" -url "$url" -n "$n" -warm "$warm" -phases sweep,settle,warm | sed "s/^{/{\"round\": $round, /"
  echo "{\"round\": $round, \"phase\": \"sweep+warm\", \"peak_rss_mib\": $(peak "$pid")}"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  pid=$(start)
  ready "$pid" >/dev/null
  "$w/budgets" -url "$url" -n $((n / 2)) -phases burst | sed "s/^{/{\"round\": $round, /"
  after=$(peak "$pid")
  sleep "$settle"
  echo "{\"round\": $round, \"phase\": \"burst\", \"peak_rss_mib_after_answers\": $after, \"peak_rss_mib_after_${settle}s_background\": $(peak "$pid")}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
