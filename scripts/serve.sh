#!/usr/bin/env bash
# The run command: installs what the gateway needs (OpenBLAS, onnxruntime), builds natgw and
# serves the tasks under ./models on :8080 with the in-memory cache (no Redis needed).
# Extra arguments go to `natgw serve` (see `natgw serve -h`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" run
cd "$root"
go build -trimpath -o bin/natgw ./cmd/natgw
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
exec bin/natgw serve "$@"
