#!/usr/bin/env bash
# Installs the onnxruntime-web 1.24.1 runtime files that the web page runs models with
# (the WebAssembly CPU build: ort.wasm.min.mjs, ort-wasm-simd-threaded.mjs/.wasm) into
# <repo>/third_party/onnxruntime-web/. 1.24.1 is the version of the native library the
# gateway uses (scripts/install-onnxruntime.sh) and runs the exported files (opset 17, IR 8).
#
# The files come from the npm package; they are not committed. Idempotent: when verified
# copies are already in place, it only prints the folder.
set -euo pipefail

ORT_WEB_VERSION="1.24.1"
NPM_PKG="onnxruntime-web@${ORT_WEB_VERSION}"
# sha256 of each installed file inside onnxruntime-web@1.24.1 (recorded from the first download).
declare -A EXPECTED_SHA256=(
	[ort.wasm.min.mjs]="c3d0b1a2618cbf1ec9033071de54d6d99d214a384c001de4d065fa4310f87386"
	[ort-wasm-simd-threaded.mjs]="3101568d9c131ea89d4c693fbff3e0d0c3dcbcf1baa09fd871b86662a071bd1a"
	[ort-wasm-simd-threaded.wasm]="fd078a39438a65660fc6c9df8d42fc886b5bf2931d6dbdd8dc51a17b1221499f"
)

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
dest="${repo_root}/third_party/onnxruntime-web"

die() { echo "install-onnxruntime-web: $*" >&2; exit 1; }

# verify <dir>: every file is there with its recorded sha256.
verify() {
	local dir="$1" f sum
	for f in "${!EXPECTED_SHA256[@]}"; do
		[[ -f "$dir/$f" ]] || return 1
		sum="$(sha256sum "$dir/$f" | awk '{print $1}')"
		if [[ "$sum" != "${EXPECTED_SHA256[$f]}" ]]; then
			echo "install-onnxruntime-web: $dir/$f has sha256 $sum, want ${EXPECTED_SHA256[$f]}" >&2
			return 1
		fi
	done
	return 0
}

if verify "$dest" 2>/dev/null; then
	echo "$dest"
	exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is required (it fetches ${NPM_PKG} from the npm registry)"
command -v tar >/dev/null 2>&1 || die "tar is required"

tmp="$(mktemp -d)"
trap 'rm -rf -- "$tmp"' EXIT

echo "install-onnxruntime-web: downloading ${NPM_PKG} ..." >&2
tgz="$(cd "$tmp" && npm pack --silent "$NPM_PKG" | tail -n 1)"
[[ -n "$tgz" && -f "$tmp/$tgz" ]] || die "npm pack ${NPM_PKG} produced no tarball"

members=(package/package.json)
for f in "${!EXPECTED_SHA256[@]}"; do members+=("package/dist/$f"); done
tar -xzf "$tmp/$tgz" -C "$tmp" "${members[@]}" || die "runtime files not found in ${tgz}"
cp "$tmp/package/package.json" "$tmp/package/dist/package.json"
verify "$tmp/package/dist" || die "downloaded files failed verification"

# Stage next to the destination, then swap folders, so the gateway never serves a mix of versions.
mkdir -p "$(dirname "$dest")"
stage="${dest}.tmp.$$"
rm -rf -- "$stage"
mkdir -p "$stage"
cp "$tmp/package/dist/package.json" "$stage/"
for f in "${!EXPECTED_SHA256[@]}"; do cp "$tmp/package/dist/$f" "$stage/$f"; done
chmod 0644 "$stage"/*
rm -rf -- "$dest"
mv -f "$stage" "$dest"

echo "$dest"
