#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every Go test (unit, golden,
# parity against ../shared, integration against a real redis-server and onnxruntime).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" all
cd "$root"
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"
go vet ./...
go test -count=1 -timeout 30m ./... "$@"
"$root/scripts/test-web.sh"
"$root/scripts/validate-deploy.sh"
