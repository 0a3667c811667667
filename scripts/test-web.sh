#!/usr/bin/env bash
# Tests natgw's web page (web/): installs what they need (Debian's Chromium, playwright-core
# from package-lock.json, the onnxruntime-web and onnxruntime files), then runs the page's
# unit tests (node --test web/test) and the end-to-end test that drives the page in headless
# Chromium against a real gateway (web/e2e). Idempotent.
#
#   scripts/test-web.sh               run the tests
#   scripts/test-web.sh --screenshot  also save the page's screenshot as docs/screenshot.png
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ "${1:-}" == "--screenshot" ]]; then
  export NATGW_WEB_SCREENSHOT="$root/docs/screenshot.png"
fi

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if [[ ! -x /usr/bin/chromium ]]; then
  echo "test-web: installing chromium" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v node >/dev/null 2>&1 || { echo "test-web: node and npm are required" >&2; exit 1; }

# playwright-core as locked; npm ci only when the installed copy is missing or stale.
want="$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')"
have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')"
if [[ "$have" != "$want" ]]; then
  echo "test-web: installing playwright-core $want" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

"$root/scripts/install-onnxruntime-web.sh" >/dev/null
"$root/scripts/install-onnxruntime.sh" >/dev/null
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so.1}"

node --test web/test/
node --test --test-concurrency=1 web/e2e/
