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
# The shipped tasks' claimed test accuracies against an outside onnxruntime run (needs the
# data sets in ../shared).
shared="${NATGW_SHARED:-$root/../shared}"
if [[ -d $shared/data/flowers102 && -d $shared/data/cifar10 ]]; then
  "$root/scripts/check-claims.sh" flowers:25M flowers:100M cifar10:100M
elif [[ ${NATGW_REQUIRE_SHARED:-} == 1 ]]; then
  echo "test.sh: $shared/data is missing: cannot check the shipped tasks' claims" >&2
  exit 1
else
  echo "test.sh: skipping the claim check: $shared/data is missing" >&2
fi
