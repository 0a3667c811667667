#!/usr/bin/env bash
# Installs what natgw needs to build, run and test on a fresh Debian machine; idempotent.
#   system packages: OpenBLAS (CPU kernels), redis-server (tests), python3-onnx/torch/numpy/pil
#   (reference tools for tests and benchmarks only), onnxruntime 1.24.1 and onnxruntime-web
#   1.24.1 for the web page (project-local, from the npm registry).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-all}" # all | run

pkgs=(libopenblas-dev)
if [[ "$what" == all ]]; then
  pkgs+=(redis-server python3-onnx python3-numpy python3-torch python3-pil)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$root/scripts/install-onnxruntime.sh" >/dev/null
"$root/scripts/install-onnxruntime-web.sh" >/dev/null
(cd "$root" && go mod download)
