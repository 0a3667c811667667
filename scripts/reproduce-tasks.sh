#!/usr/bin/env bash
# Rebuilds the shipped tasks (models/flowers, models/cifar10) from ../shared/data, each with
# one natgw task create (import, warm-up, NAT adaptation, eval crops, test evaluation), and
# checks every file they are made of against scripts/shipped-tasks.sha256: byte for byte.
#   scripts/reproduce-tasks.sh [flowers|cifar10|check]...   (default: flowers cifar10 check)
# Each call resumes where a killed one stopped. WORK (default work/tasks) holds every stage's
# state, OUT (default models) gets the tasks; `check` alone checks OUT as it is.
#
# Trained weights depend on the sgemm kernel OpenBLAS picks for the CPU (or OPENBLAS_CORETYPE
# names): the same run on another kernel rounds differently and diverges, as a new seed
# would. Each task is built on the kernel it was trained on, whatever the environment says
# (Flowers on Cooperlake's AVX-512 ones, CIFAR-10 on Haswell's AVX2 ones); BLAS_CORE
# overrides both (BLAS_CORE=Haswell on a CPU without AVX-512 BF16, where Flowers then trains
# as another draw and the check fails for it). The data paths are recorded in the weights'
# metadata too: run from the repository root with the shared folder at the same place.
#
# The experiments that chose these recipes (about sixty variants and baselines) ran from this
# script's earlier version at commit 5c69b51 (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
S=$(cd "${NATGW_SHARED:-../shared}" && pwd)/data
WORK=${WORK:-work/tasks}
OUT=${OUT:-models}
# Training at 160 px holds several GB of activations; a soft limit makes the collector keep
# the heap near it instead of letting garbage double it.
export GOMEMLIMIT=${GOMEMLIMIT:-14GiB}
N=bin/natgw

build() {
	mkdir -p "$WORK" "$OUT" bin
	go build -o "$N" ./cmd/natgw
}

# flowers: the standard preset on Oxford Flowers-102 (its official train/val/test split).
flowers() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	$N task create --name flowers --data "$S/flowers102" --preset standard --replicated-chroma --out "$OUT/flowers" --work "$WORK/flowers" \
		--description "Oxford Flowers-102 (64 px), NAT-adapted MobileNetV2 supernet" >"$WORK/flowers.json"
}

# cifar10_data: CIFAR-10 here has no val split: files 0450-0499 of each class's train folder
# become val (copies), the rest train, and test is copied as it is.
cifar10_data() {
	local d=$WORK/cifar10/data c f n
	if [[ -d $d/test ]]; then return; fi
	rm -rf "$d.tmp"
	mkdir -p "$d.tmp"
	cp "$S/cifar10/classes.txt" "$d.tmp/"
	for c in "$S/cifar10/train"/*/; do
		c=$(basename "$c")
		mkdir -p "$d.tmp/train/$c" "$d.tmp/val/$c"
		for f in "$S/cifar10/train/$c"/*.jpg; do
			n=$(basename "$f" .jpg)
			if ((10#$n >= 450)); then cp "$f" "$d.tmp/val/$c/"; else cp "$f" "$d.tmp/train/$c/"; fi
		done
	done
	cp -r "$S/cifar10/test" "$d.tmp/test"
	rm -rf "$d"
	mv "$d.tmp" "$d"
}

# cifar10: the CIFAR-10 recipe (scripts/recipes/cifar10.json: 96 px, a shorter schedule for
# a set four times larger) on that split.
cifar10() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	mkdir -p "$WORK/cifar10"
	cifar10_data
	$N task create --name cifar10 --data "$WORK/cifar10/data" --recipe scripts/recipes/cifar10.json --replicated-chroma --dataset cifar10 \
		--out "$OUT/cifar10" --work "$WORK/cifar10" \
		--description "CIFAR-10 (32 px, 4,500-image train subset), NAT-adapted MobileNetV2 supernet" >"$WORK/cifar10.json"
}

# check: every file of the shipped tasks as listed in scripts/shipped-tasks.sha256, and no
# file the list does not name.
check() {
	(cd "$OUT" && sha256sum --quiet --strict -c "$root/scripts/shipped-tasks.sha256")
	local listed present
	listed=$(awk '{print $2}' "$root/scripts/shipped-tasks.sha256" | sort)
	present=$(cd "$OUT" && find flowers cifar10 -type f | sort)
	if [[ $listed != "$present" ]]; then
		echo "reproduce-tasks: the files of $OUT/flowers and $OUT/cifar10 are not the listed ones:" >&2
		diff <(echo "$listed") <(echo "$present") >&2 || true
		return 1
	fi
	echo "reproduce-tasks: $(wc -l <"$root/scripts/shipped-tasks.sha256") files of $OUT/flowers and $OUT/cifar10 as listed" >&2
}

stages=("$@")
((${#stages[@]})) || stages=(flowers cifar10 check)
for s in "${stages[@]}"; do
	case $s in
	flowers | cifar10) build; "$s" ;;
	check) check ;;
	*) echo "reproduce-tasks: unknown stage $s (want flowers, cifar10 or check)" >&2; exit 2 ;;
	esac
done
