#!/usr/bin/env bash
# Installs the onnxruntime 1.24.1 shared library that github.com/yalue/onnxruntime_go v1.27.0 needs
# into <repo>/third_party/onnxruntime/lib/libonnxruntime.so.1.
#
# The library is taken from the npm package onnxruntime-node@1.24.1, which ships the official
# Linux x64 build; npm is used because its registry is reachable where GitHub release assets may not be.
# Idempotent: when a verified copy is already in place, it only prints the path.
set -euo pipefail

ORT_VERSION="1.24.1"
NPM_PKG="onnxruntime-node@${ORT_VERSION}"
TARBALL_MEMBER="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
# sha256 of libonnxruntime.so.1 inside onnxruntime-node@1.24.1 (recorded from the first download).
EXPECTED_SHA256="53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
lib_dir="${repo_root}/third_party/onnxruntime/lib"
lib_path="${lib_dir}/libonnxruntime.so.1"

die() { echo "install-onnxruntime: $*" >&2; exit 1; }

# verify <file>: the file must be an x86-64 ELF shared object with the recorded sha256
# (the sha256 pins the version; the ELF checks give a clearer message for a wrong file).
verify() {
	local f="$1"
	[[ -f "$f" ]] || return 1
	# ELF magic and ELFCLASS64.
	local magic etype
	magic="$(od -An -tx1 -N5 "$f" | tr -d ' \n')"
	[[ "$magic" == "7f454c4602" ]] || { echo "install-onnxruntime: $f is not a 64-bit ELF file" >&2; return 1; }
	# e_type == ET_DYN (3) and e_machine == EM_X86_64 (0x3e), both little-endian.
	etype="$(od -An -tx1 -j16 -N4 "$f" | tr -d ' \n')"
	[[ "$etype" == "03003e00" ]] || { echo "install-onnxruntime: $f is not an x86-64 ELF shared object" >&2; return 1; }
	local sum
	sum="$(sha256sum "$f" | awk '{print $1}')"
	if [[ "$sum" != "$EXPECTED_SHA256" ]]; then
		echo "install-onnxruntime: $f has sha256 $sum, want $EXPECTED_SHA256 (onnxruntime ${ORT_VERSION})" >&2
		return 1
	fi
	return 0
}

if [[ -e "$lib_path" ]]; then
	if verify "$lib_path"; then
		echo "$lib_path"
		exit 0
	fi
	echo "install-onnxruntime: replacing the existing file at $lib_path" >&2
fi

command -v npm >/dev/null 2>&1 || die "npm is required (it fetches ${NPM_PKG} from the npm registry)"
command -v tar >/dev/null 2>&1 || die "tar is required"

tmp="$(mktemp -d)"
trap 'rm -rf -- "$tmp"' EXIT

echo "install-onnxruntime: downloading ${NPM_PKG} ..." >&2
tgz="$(cd "$tmp" && npm pack --silent "$NPM_PKG" | tail -n 1)"
[[ -n "$tgz" && -f "$tmp/$tgz" ]] || die "npm pack ${NPM_PKG} produced no tarball"

tar -xzf "$tmp/$tgz" -C "$tmp" "$TARBALL_MEMBER" || die "${TARBALL_MEMBER} not found in ${tgz}"
verify "$tmp/$TARBALL_MEMBER" || die "downloaded library failed verification"

mkdir -p "$lib_dir"
# Copy then rename so a concurrent reader never sees a half-written library.
cp "$tmp/$TARBALL_MEMBER" "$lib_path.tmp.$$"
chmod 0644 "$lib_path.tmp.$$"
mv -f "$lib_path.tmp.$$" "$lib_path"

echo "$lib_path"
