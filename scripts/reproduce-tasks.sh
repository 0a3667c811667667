#!/usr/bin/env bash
# Rebuilds the shipped tasks (models/flowers, models/cifar10) from ../shared/data:
# TFLite MobileNetV2 import -> uniform sandwich warm-up on the task -> NAT adaptation
# (natgw adapt) -> final test-split evaluation of the served front (natgw evaluate).
# Every step is resumable: rerun after a kill and it continues. Usage:
#   scripts/reproduce-tasks.sh [flowers|cifar10|flowers-baseline]...   (default: flowers cifar10)
# WORK (default work/tasks) holds the intermediate files; OUT (default models) gets the tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
S=$(cd "${NATGW_SHARED:-../shared}" && pwd)/data
WORK=${WORK:-work/tasks}
OUT=${OUT:-models}
mkdir -p "$WORK" "$OUT" bin
go build -o bin/natgw ./cmd/natgw
N=bin/natgw
TFL=$S/pretrained-mobilenet-tflite

# stage NAME OUTPUT CMD...: runs CMD unless OUTPUT exists, timing it.
stage() {
	local name=$1 out=$2
	shift 2
	if [[ -e $out ]]; then
		echo "== $name: $out exists, skipped" >&2
		return
	fi
	echo "== $name" >&2
	local t0=$SECONDS
	"$@"
	echo "== $name: $((SECONDS - t0)) s" >&2
}

flowers() {
	local w=$WORK/flowers
	mkdir -p "$w"
	stage "flowers: import" "$w/imported.safetensors" \
		$N import-tflite --model "$TFL/mobilenet_v2_1.0_224_quant.tflite" --labels "$TFL/imagenet_labels.txt" \
		--calib "$S/flowers102/train" --calib-images 1020 --resolution 128 --id mobilenet_v2_1.0_224_quant \
		--out "$w/imported.safetensors"
	stage "flowers: warm-up" "$w/warm.safetensors" \
		$N train --supernet "$w/imported.safetensors" --data "$S/flowers102" --resolution 128 --batch 32 --epochs 10 \
		--subnets 1 --lr 0.001 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --calib 500 --out "$w/warm.safetensors"
	stage "flowers: adapt" "$OUT/flowers/archive.json" \
		$N adapt --supernet "$w/warm.safetensors" --data "$S/flowers102" --out "$OUT/flowers" --work "$w/adapt" \
		--description "Oxford Flowers-102 (64 px), NAT-adapted MobileNetV2 supernet" \
		--resolution 128 --iterations 2 --epochs 5 --lr 0.001 --evals 20 --final-evals 40 --calib 500
	stage "flowers: test evaluation" "$w/test.jsonl" \
		sh -c "$N evaluate --task '$OUT/flowers' --data '$S/flowers102' --split test > '$w/test.jsonl.tmp' && mv '$w/test.jsonl.tmp' '$w/test.jsonl'"
}

cifar10() {
	local w=$WORK/cifar10 d=$WORK/cifar10/data
	mkdir -p "$w"
	# CIFAR-10 has no val split: hold out files 0450-0499 of each class's train folder
	# (copies); test/ is not copied, so nothing before the final evaluation can read it.
	if [[ ! -d $d ]]; then
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
		mv "$d.tmp" "$d"
	fi
	stage "cifar10: import" "$w/imported.safetensors" \
		$N import-tflite --model "$TFL/mobilenet_v2_1.0_224_quant.tflite" --labels "$TFL/imagenet_labels.txt" \
		--calib "$d/train" --calib-images 1000 --resolution 96 --id mobilenet_v2_1.0_224_quant \
		--out "$w/imported.safetensors"
	stage "cifar10: warm-up" "$w/warm.safetensors" \
		$N train --supernet "$w/imported.safetensors" --data "$d" --resolution 96 --batch 32 --epochs 4 \
		--subnets 1 --lr 0.001 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --calib 500 --out "$w/warm.safetensors"
	stage "cifar10: adapt" "$OUT/cifar10/archive.json" \
		$N adapt --supernet "$w/warm.safetensors" --data "$d" --out "$OUT/cifar10" --work "$w/adapt" --dataset cifar10 \
		--description "CIFAR-10 (32 px, 4,500-image train subset), NAT-adapted MobileNetV2 supernet" \
		--resolution 96 --iterations 1 --epochs 2 --lr 0.001 --evals 16 --final-evals 32 --calib 500
	stage "cifar10: test evaluation" "$w/test.jsonl" \
		sh -c "$N evaluate --task '$OUT/cifar10' --data '$S/cifar10' --split test > '$w/test.jsonl.tmp' && mv '$w/test.jsonl.tmp' '$w/test.jsonl'"
}

# flowers-baseline: conventional fine-tuning of the fixed TensorFlow MobileNetV2 with the same
# data, trainer and epochs (20) as the flowers task, measured on test by the outside check.
flowers-baseline() {
	local w=$WORK/flowers A='{"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[2,3,4,3,3,1],"r":128}'
	stage "flowers: fixed MobileNetV2 baseline" "$w/fixed20-128.safetensors" \
		$N train --supernet "$w/imported.safetensors" --data "$S/flowers102" --resolution 128 --batch 32 --epochs 20 \
		--lr 0.005 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --fixed "$A" --calib 500 --out "$w/fixed20-128.safetensors"
	$N export --supernet "$w/fixed20-128.safetensors" --arch "$A" --task flowers --out "$w/fixed20-128.onnx"
	go build -o bin/orteval ./bench/orteval
	/usr/bin/python3 bench/orteval/prep.py "$w/fixed20-128.onnx" "$S/flowers102" test | bin/orteval --model "$w/fixed20-128.onnx"
}

for t in "${@:-flowers cifar10}"; do
	for x in $t; do "$x"; done
done
