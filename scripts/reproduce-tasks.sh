#!/usr/bin/env bash
# Rebuilds the shipped tasks (models/flowers, models/cifar10) from ../shared/data:
# TFLite MobileNetV2 import -> uniform sandwich warm-up on the task -> NAT adaptation
# (natgw adapt) -> the eval crop per input size chosen on val (natgw tune-crop) -> final
# test-split evaluation of the served front (natgw evaluate).
# Every step is resumable: rerun after a kill and it continues. Usage:
#   scripts/reproduce-tasks.sh [flowers|cifar10|flowers-baseline|cifar10-baseline|tinyimagenet-source|flowers-baseline-source|flowers-from-source|flowers-fixedwarm|flowers-elasticres|flowers-elasticwarm|flowers-res96|flowers-iter3|flowers-baseline25|flowers-baseline-seeds|flowers-reference-recipe|flowers-baseline-head01|cifar10-baseline-head01|flowers-lr2|flowers-lr2warm|flowers-top|flowers-top-seed2|flowers-top-seed3|flowers-baseline-mix|flowers-top-sizes|flowers-top-sizes-seed3|flowers-top-sizes-seed1|flowers-warm-top-sizes|flowers-warm-top-sizes-seed2|flowers-warm-top-sizes-seed3|flowers-top-kd|flowers-top-kd-seed3|flowers-top-kd-seed1|flowers-top-kdw-seed1|flowers-top-kdw|flowers-top-kdw-seed3|flowers-top-kdw-seed4|flowers-top-kd-seed1-avg|flowers-top-kd-avg|flowers-top-kd-seed3-avg|flowers-top-kdw-seed1-avg|flowers-top-kdw-avg|flowers-top-kdw-seed3-avg|flowers-top-kdw-seed4-avg|flowers-baseline-cycles|cifar10-avg|flowers-final80|flowers-rounds5|flowers-rounds5-seed2|flowers-res96x2|flowers-adapt-seed2|flowers-rounds1|flowers-adapt-lr5e4|flowers-adapt-lr2e3|flowers-adapt-lr3e3|flowers-top224|flowers-crop25|flowers-baseline-redraw|flowers-baseline-224|flowers-crop|flowers-baseline-crop|cifar10-baseline-crop]...
#   (default: flowers cifar10)
# WORK (default work/tasks) holds the intermediate files; OUT (default models) gets the tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
S=$(cd "${NATGW_SHARED:-../shared}" && pwd)/data
WORK=${WORK:-work/tasks}
# Training at 160 px and above holds several GB of activations; a soft limit makes the
# collector keep the heap near it instead of letting garbage double it.
export GOMEMLIMIT=${GOMEMLIMIT:-14GiB}
OUT=${OUT:-models}
mkdir -p "$WORK" "$OUT" bin
go build -o bin/natgw ./cmd/natgw
N=bin/natgw
TFL=$S/pretrained-mobilenet-tflite

# OpenBLAS picks its sgemm kernel per CPU at run time (or as OPENBLAS_CORETYPE says), and
# trained weights depend on it: the same run on another kernel rounds differently and
# diverges, a different draw as a new seed would be. The shipped tasks were trained on the
# kernels their functions below pin, whatever the environment says (Flowers on Cooperlake's
# AVX-512 ones, CIFAR-10 on Haswell's AVX2 ones); each reproduces byte for byte with its pin
# (checked in session 14). BLAS_CORE overrides the pins: BLAS_CORE=Haswell on a CPU without
# AVX-512 BF16, where Flowers then trains as a different draw.

# stage NAME OUTPUT CMD...: runs CMD unless OUTPUT exists, timing it.
stage() {
	local name=$1 out=$2
	shift 2
	if [[ -e $out ]]; then
		echo "== $name: $out exists, skipped" >&2
		return
	fi
	echo "== $name (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})" >&2
	local t0=$SECONDS
	"$@"
	echo "== $name: $((SECONDS - t0)) s" >&2
}

# copy_rounds FROM TO FILE...: copies the named files of one adaptation's work folder into
# another's where missing, so that a variant sharing its first rounds runs only what differs.
copy_rounds() {
	local from=$1 to=$2 f
	shift 2
	mkdir -p "$to"
	for f in "$@"; do
		[[ -e $to/$f ]] || cp "$from/$f" "$to/$f"
	done
}

# tune_crop LABEL TASK DATA W: natgw tune-crop --write over TASK on DATA's val split (the eval
# centre crop per input size, session 17), logged in W so that a rerun resumes.
tune_crop() {
	stage "$1: tune crop" "$4/tune-crop.out" sh -c "$N tune-crop --task '$2' --data '$3' \
		--log '$4/tune-crop.jsonl' --write > '$4/tune-crop.out.tmp' && mv '$4/tune-crop.out.tmp' '$4/tune-crop.out'"
}

# The imported network's own arch (MobileNetV2: kernel 3, expand 6, full depth) at several
# resolutions: every search measures these first. The pretrained weights are exactly this
# network, and a random sample of the space almost never lands near it.
mbv2_seeds() {
	local r sep="" out="["
	for r in "$@"; do out+="$sep{$MBV2,\"r\":$r}"; sep=","; done
	echo "$out]"
}

# flowers_warm OUT [flags...]: the flowers recipe's warm-up from the import, its new head at
# N(0, 0.01); the shipped task's adds the imported arch as the top, trained at every size.
# The variants of sessions 5 and 6 below (flowers-elasticres, -elasticwarm, -res96, -iter3)
# ran on warm-ups with the fan-in head (--head-std 0).
flowers_warm() {
	$N train --supernet "$WORK/flowers/imported.safetensors" --data "$S/flowers102" --resolution 128 --batch 32 --epochs 10 \
		--subnets 1 --lr 0.001 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --calib 500 --head-std 0.01 --out "$1" "${@:2}"
}

# flowers_adapt WARM OUT WORK [flags...]: the flowers recipe's NAT adaptation. Its batches
# are drawn at 96, 128 (half of them) or 160 px, so that subnets train at the sizes they are
# served at; chosen on val (docs/results.md). The shipped task (flowers, below) also puts the
# imported arch at the top of the sandwich (--top, session 8) and trains it at all three
# sizes every step (--top-sizes, session 9); the variants before those ran without.
flowers_adapt() {
	local warm=$1 out=$2 work=$3
	shift 3
	$N adapt --supernet "$warm" --data "$S/flowers102" --out "$out" --name flowers --work "$work" \
		--description "Oxford Flowers-102 (64 px), NAT-adapted MobileNetV2 supernet" \
		--resolution 128 --iterations 2 --epochs 5 --lr 0.001 --evals 20 --final-evals 40 --calib 500 \
		--seed-archs "$(mbv2_seeds 96 128 160 192 224)" --train-resolutions 96,128,128,160 "$@"
}

# flowers_import: the TFLite import with BatchNorm rebuilt on Flowers' train split, on the
# flowers pin; the shipped task and every flowers baseline start from it.
flowers_import() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	mkdir -p "$WORK/flowers"
	stage "flowers: import" "$WORK/flowers/imported.safetensors" \
		$N import-tflite --model "$TFL/mobilenet_v2_1.0_224_quant.tflite" --labels "$TFL/imagenet_labels.txt" \
		--calib "$S/flowers102/train" --calib-images 1020 --resolution 128 --id mobilenet_v2_1.0_224_quant \
		--out "$WORK/flowers/imported.safetensors"
}

flowers() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	local w=$WORK/flowers
	mkdir -p "$w"
	flowers_import
	# The warm-up and the adaptation both train the imported arch at the top of the sandwich
	# at every served size (--top, --top-sizes), its 160 px pass teaching the others
	# (--top-kd) with its own labels weighed 2 (--top-kd-weight); the task serves the mean
	# of the warm-up's and both rounds' end weights (--average 3): flowers-top-kdw-seed1-avg,
	# chosen on val at baseline (a)'s three costs among the shipped task and the averaged
	# runs of sessions 11-12 (docs/results.md).
	stage "flowers: warm-up" "$w/warm.safetensors" flowers_warm "$w/warm.safetensors" \
		"${FLOWERS_TOP[@]}" --seed 1
	stage "flowers: adapt" "$OUT/flowers/archive.json" flowers_adapt "$w/warm.safetensors" "$OUT/flowers" "$w/adapt" \
		"${FLOWERS_TOP[@]}" --seed 1 --average 3
	# The eval centre crop per resolution, chosen on val over the whole archive (session 17).
	tune_crop flowers "$OUT/flowers" "$S/flowers102" "$w"
	stage "flowers: test evaluation" "$w/test.jsonl" \
		sh -c "$N evaluate --task '$OUT/flowers' --data '$S/flowers102' --split test > '$w/test.jsonl.tmp' && mv '$w/test.jsonl.tmp' '$w/test.jsonl'"
}

# CIFAR-10's warm-up and adaptation draw each batch at 96 or 128 px (elastic resolution), so
# that its 128-px subnets train at their own size; chosen on val (docs/results.md).
cifar10_warm() {
	$N train --supernet "$WORK/cifar10/imported.safetensors" --data "$WORK/cifar10/data" --resolution 96 --resolutions 96,128 \
		--batch 32 --epochs 4 --subnets 1 --lr 0.001 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --calib 500 --head-std 0.01 --out "$1"
}

cifar10_adapt() {
	local warm=$1 out=$2 work=$3
	shift 3
	$N adapt --supernet "$warm" --data "$WORK/cifar10/data" --out "$out" --name cifar10 --work "$work" --dataset cifar10 \
		--description "CIFAR-10 (32 px, 4,500-image train subset), NAT-adapted MobileNetV2 supernet" \
		--resolution 96 --iterations 1 --epochs 2 --lr 0.001 --evals 16 --final-evals 32 --calib 500 \
		--seed-archs "$(mbv2_seeds 96 128 160)" --train-resolutions 96,128 "$@"
}

# cifar10_data: CIFAR-10 has no val split: hold out files 0450-0499 of each class's train
# folder (copies) into $WORK/cifar10/data; test/ is not copied, so nothing before the final
# evaluation can read it.
cifar10_data() {
	local d=$WORK/cifar10/data c f n
	[[ -d $d ]] && return
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
}

cifar10_import() {
	$N import-tflite --model "$TFL/mobilenet_v2_1.0_224_quant.tflite" --labels "$TFL/imagenet_labels.txt" \
		--calib "$WORK/cifar10/data/train" --calib-images 1000 --resolution 96 --id mobilenet_v2_1.0_224_quant \
		--out "$WORK/cifar10/imported.safetensors"
}

cifar10() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	local w=$WORK/cifar10
	cifar10_data
	stage "cifar10: import" "$w/imported.safetensors" cifar10_import
	stage "cifar10: warm-up" "$w/warm.safetensors" cifar10_warm "$w/warm.safetensors"
	stage "cifar10: adapt" "$OUT/cifar10/archive.json" cifar10_adapt "$w/warm.safetensors" "$OUT/cifar10" "$w/adapt"
	# The eval centre crop per resolution, chosen on val over the whole archive (session 17).
	tune_crop cifar10 "$OUT/cifar10" "$w/data" "$w"
	stage "cifar10: test evaluation" "$w/test.jsonl" \
		sh -c "$N evaluate --task '$OUT/cifar10' --data '$S/cifar10' --split test > '$w/test.jsonl.tmp' && mv '$w/test.jsonl.tmp' '$w/test.jsonl'"
}

# Baselines for docs/results.md, trained with the same data and epochs as the task (flowers:
# 10 warm-up + 2x5 adaptation = 20; cifar10: 4 + 1x2 = 6) and measured on test by the outside
# check (PIL/PyTorch preprocessing, onnxruntime). Each appends a JSON line to
# $WORK/TASK/baselines.jsonl: {"baseline", "arch", "madds", "params", "val_top1", "test_top1"}.
#  (a) conventional transfer: the fixed TensorFlow MobileNetV2 fine-tuned at several resolutions;
#  (b) no adaptation: subnets of the imported supernet (the source, without NAT) with BatchNorm
#      recalibrated on the task and only the classifier trained; the archs are those NAT serves.
MBV2='"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[2,3,4,3,3,1]'
# The shipped Flowers recipe's top of the sandwich, in its warm-up and its adaptation: the
# imported arch, trained at every served size, its 160 px pass teaching the others, weighed 2.
FLOWERS_TOP=(--top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --top-kd --top-kd-weight 2)

# The baselines of sessions 1-6 were trained with a new head at a fresh network's fan-in scale
# (--head-std 0); natgw train's default, and the shipped tasks', is now N(0, 0.01) as
# torchvision's (docs/results.md, "The new head's init"). HEAD_STD overrides the baselines' 0.

# baseline KIND TASK DATA TESTDATA NAME ARCH EPOCHS LR [train flags...]
baseline() {
	local kind=$1 task=$2 data=$3 test=$4 name=$5 arch=$6 epochs=$7 lr=$8
	shift 8
	local w=$WORK/$task r
	r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["r"])' "$arch")
	stage "$task: baseline ($kind) $name" "$w/$name.onnx" sh -c "
		$N train --supernet '${FROM:-$w/imported.safetensors}' --data '$data' --resolution $r --batch 32 --epochs $epochs \
			--lr $lr --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --fixed '$arch' --calib 500 --head-std ${HEAD_STD:-0} $* \
			--out '$w/$name.safetensors' > '$w/$name.train.json' &&
		$N export --supernet '$w/$name.safetensors' --arch '$arch' --task $task --out '$w/$name.onnx.tmp' > '$w/$name.export.txt' 2>&1 &&
		mv '$w/$name.onnx.tmp' '$w/$name.onnx'"
	if grep -q "\"name\": \"$name\"" "$w/baselines.jsonl" 2>/dev/null; then return; fi
	go build -o bin/orteval ./bench/orteval
	/usr/bin/python3 bench/orteval/prep.py "$w/$name.onnx" "$test" test | bin/orteval --model "$w/$name.onnx" > "$w/$name.test.json"
	python3 - "$kind" "$name" "$arch" "$w" >> "$w/baselines.jsonl" <<'PY'
import json, re, sys
kind, name, arch, w = sys.argv[1:]
train = json.loads(open(f"{w}/{name}.train.json").read().strip().splitlines()[-1])
exp = open(f"{w}/{name}.export.txt").read()
print(json.dumps({"baseline": kind, "name": name, "arch": json.loads(arch),
	"madds": int(re.search(r"(\d+) MAdds", exp).group(1)), "params": int(re.search(r"(\d+) params", exp).group(1)),
	"val_top1": train["evals"][-1]["accuracy"], "test_top1": json.load(open(f"{w}/{name}.test.json"))["top1"]}))
PY
}

# front_arch TASK MADDS_M: the served front's arch of the most MAdds not above MADDS_M.
front_arch() {
	python3 - "$OUT/$1/archive.json" "$2" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
es = [e for e in a["entries"] if e.get("test_top1") is not None and e["madds"] <= float(sys.argv[2]) * 1e6]
print(json.dumps(max(es, key=lambda e: e["madds"])["arch"], separators=(",", ":")))
PY
}

# flowers_baselines EPOCHS: baselines (a) and (b) for a flowers task trained EPOCHS epochs in all.
flowers_baselines() {
	local ep=$1 r m
	for r in 96 128 160; do
		baseline a flowers "$S/flowers102" "$S/flowers102" "fixed$ep-$r" "{$MBV2,\"r\":$r}" "$ep" 0.005
	done
	for m in 50 100 175; do
		baseline b flowers "$S/flowers102" "$S/flowers102" "probe$ep-${m}M" "$(front_arch flowers $m)" "$ep" 0.02 --train-only classifier.
	done
}

flowers-baseline() { flowers_baselines 20; }

# flowers-baseline-source: baseline (b) on the progressive-shrinking source supernet
# (tinyimagenet-source): the same archs, BatchNorm recalibrated, only the classifier trained.
flowers-baseline-source() {
	local m
	for m in 50 100 175; do
		FROM=$WORK/tinyimagenet/ps-all.safetensors baseline b-source flowers "$S/flowers102" "$S/flowers102" \
			"source-probe20-${m}M" "$(front_arch flowers $m)" 20 0.02 --train-only classifier.
	done
}

cifar10-baseline() {
	local r
	for r in 96 128; do
		baseline a cifar10 "$WORK/cifar10/data" "$S/cifar10" "fixed6-$r" "{$MBV2,\"r\":$r}" 6 0.005
	done
	for m in 25 50; do
		baseline b cifar10 "$WORK/cifar10/data" "$S/cifar10" "probe6-${m}M" "$(front_arch cifar10 $m)" 6 0.02 --train-only classifier.
	done
}

# tinyimagenet-source: the source supernet, progressive shrinking in miniature on the
# Tiny-ImageNet train subset (16,000 images, 200 ImageNet classes) at 128 px: the elastic
# kernel, then depth, then expand ratio, each phase distilling from the full pretrained
# network (--teacher, frozen). The rate must be tiny: the sandwich sums four subnets'
# gradients, each against hard plus soft targets, and already lr 0.0005 wrecked the pretrained
# network (docs/results.md); at 0.00002 the first phase lifts it from 44.7 to 49.2 % val. The same random subnets are measured before and after on val.
tinyimagenet-source() {
	local w=$WORK/tinyimagenet d=$S/tinyimagenet
	mkdir -p "$w"
	stage "tinyimagenet: import" "$w/imported.safetensors" \
		$N import-tflite --model "$TFL/mobilenet_v2_1.0_224_quant.tflite" --labels "$TFL/imagenet_labels.txt" \
		--calib "$d/train" --calib-images 256 --resolution 128 --classes-from "$d" --id mobilenet_v2_1.0_224_quant \
		--out "$w/imported.safetensors"
	local from=$w/imported.safetensors phase steps
	for phase in ks:100 ks,d:150 all:200; do
		steps=${phase#*:} phase=${phase%:*}
		stage "tinyimagenet: progressive shrinking, elastic $phase" "$w/ps-${phase//,/}.safetensors" \
			$N train --supernet "$from" --teacher "$w/imported.safetensors" --elastic "$phase" --data "$d" \
			--resolution 128 --batch 32 --max-steps "$steps" --subnets 2 --lr 0.00002 --weight-decay 4e-5 \
			--crop-scale 0.5 --calib 200 --out "$w/ps-${phase//,/}.safetensors"
		from=$w/ps-${phase//,/}.safetensors
	done
	# The same 12 seeded random subnets measured on val before and after (a paired comparison).
	for f in imported ps-all; do
		stage "tinyimagenet: 12 random subnets of $f on val" "$w/sample-$f.json" sh -c \
			"$N search --supernet '$w/$f.safetensors' --data '$d' --task tinyimagenet --evals 12 --initial 12 --seed 1 --calib 200 --out '$w/sample-$f.json.tmp' >&2 && mv '$w/sample-$f.json.tmp' '$w/sample-$f.json'"
	done
}

# flowers_test W LABEL: the final test evaluation of a variant's task W/task into W/test.jsonl.
flowers_test() {
	local w=$1
	stage "$2: test evaluation" "$w/test.jsonl" \
		sh -c "$N evaluate --task '$w/task' --data '$S/flowers102' --split test > '$w/test.jsonl.tmp' && mv '$w/test.jsonl.tmp' '$w/test.jsonl'"
}

# flowers_variant W LABEL DESCRIPTION: the flowers recipe's adaptation (without seeds, as these
# variants ran) and test evaluation, from W/warm.safetensors into W/task.
flowers_variant() {
	local w=$1 label=$2 desc=$3
	stage "$label: adapt" "$w/task/archive.json" \
		$N adapt --supernet "$w/warm.safetensors" --data "$S/flowers102" --out "$w/task" --name flowers --work "$w/adapt" \
		--description "$desc" --resolution 128 --iterations 2 --epochs 5 --lr 0.001 --evals 20 --final-evals 40 --calib 500
	flowers_test "$w" "$label"
}

# flowers-from-source: the flowers pipeline started from the progressive-shrinking source
# supernet (tinyimagenet-source) instead of the bare import, with the same epochs and flags.
# The task lands in $WORK/flowers-from-source/task.
flowers-from-source() {
	local w=$WORK/flowers-from-source src=$WORK/tinyimagenet/ps-all.safetensors
	mkdir -p "$w"
	[[ -e $src ]] || { echo "flowers-from-source: run tinyimagenet-source first ($src)" >&2; return 1; }
	stage "flowers from source: warm-up" "$w/warm.safetensors" \
		$N train --supernet "$src" --data "$S/flowers102" --resolution 128 --batch 32 --epochs 10 \
		--subnets 1 --lr 0.001 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --calib 500 --head-std 0 --out "$w/warm.safetensors"
	flowers_variant "$w" "flowers from source" "Oxford Flowers-102 (64 px), NAT-adapted MobileNetV2 supernet (Tiny-ImageNet source)"
}

# flowers-fixedwarm: the flowers pipeline with conventional transfer as its warm-up: the
# fixed MobileNetV2 arch (the supernet's largest kernel-3 subnet) fine-tuned for 10 epochs
# as baseline (a) is for 20, then the same NAT adaptation (2 x 5 epochs). The task lands in
# $WORK/flowers-fixedwarm/task.
flowers-fixedwarm() {
	local w=$WORK/flowers-fixedwarm
	mkdir -p "$w"
	stage "flowers fixed warm-up: import" "$w/imported.safetensors" cp "$WORK/flowers/imported.safetensors" "$w/imported.safetensors"
	stage "flowers fixed warm-up: warm-up" "$w/warm.safetensors" \
		$N train --supernet "$w/imported.safetensors" --data "$S/flowers102" --resolution 128 --batch 32 --epochs 10 \
		--lr 0.005 --weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --fixed "{$MBV2,\"r\":128}" --calib 500 --head-std 0 --out "$w/warm.safetensors"
	flowers_variant "$w" "flowers fixed warm-up" "Oxford Flowers-102 (64 px), NAT-adapted MobileNetV2 supernet"
}

# flowers-elasticres: the flowers adaptation from the recipe's warm-up file with each step's
# batch at 96, 128 or 160 px evenly (the list given last replaces the recipe's), val only: the
# task lands in $WORK/flowers-elasticres/task.
flowers-elasticres() {
	local w=$WORK/flowers-elasticres
	mkdir -p "$w"
	stage "flowers elastic resolution: adapt" "$w/task/archive.json" \
		flowers_adapt "$WORK/flowers/warm.safetensors" "$w/task" "$w/adapt" --train-resolutions 96,128,160
}

# flowers-elasticwarm: the flowers recipe with its warm-up and adaptation batches drawn at 96,
# 128 or 160 px evenly, val only: the task lands in $WORK/flowers-elasticwarm/task.
flowers-elasticwarm() {
	local w=$WORK/flowers-elasticwarm
	mkdir -p "$w"
	stage "flowers elastic warm-up: warm-up" "$w/warm.safetensors" flowers_warm "$w/warm.safetensors" --resolutions 96,128,160
	stage "flowers elastic warm-up: adapt" "$w/task/archive.json" \
		flowers_adapt "$w/warm.safetensors" "$w/task" "$w/adapt" --train-resolutions 96,128,160
}

# flowers-res96: the flowers adaptation from the recipe's warm-up file with a third of the
# batches at 96 px, half at 128 and a sixth at 160 (the recipe: a quarter, half, a quarter),
# val only: the task lands in $WORK/flowers-res96/task.
flowers-res96() {
	local w=$WORK/flowers-res96
	mkdir -p "$w"
	stage "flowers 96-px weighted: adapt" "$w/task/archive.json" \
		flowers_adapt "$WORK/flowers/warm.safetensors" "$w/task" "$w/adapt" --train-resolutions 96,96,128,128,128,160
}

# flowers-iter3: the shipped flowers adaptation carried on for a third iteration (25 epochs
# in all), resumed from that run's work folder ($WORK/flowers-elasticres128/adapt, copied),
# val only: the task lands in $WORK/flowers-iter3/task. flowers-baseline25 trains baseline
# (a) for the same 25 epochs.
flowers-iter3() {
	local w=$WORK/flowers-iter3 from=$WORK/flowers-elasticres128/adapt
	if [[ ! -e $w/adapt ]]; then
		mkdir -p "$w/adapt"
		cp "$from"/weights-[012].safetensors "$from"/archive-[01].json "$from"/train-[01].state "$w/adapt/"
	fi
	stage "flowers third iteration: adapt" "$w/task/archive.json" \
		flowers_adapt "$WORK/flowers/warm.safetensors" "$w/task" "$w/adapt" --iterations 3
}

flowers-baseline25() { flowers_baselines 25; }

# flowers-baseline-seeds: baseline (a) at 96 px, 20 epochs, with two more seeds: how far one
# training run of the fixed network moves by chance.
flowers-baseline-seeds() {
	local seed
	for seed in 2 3; do
		baseline a flowers "$S/flowers102" "$S/flowers102" "fixed20-96-seed$seed" "{$MBV2,\"r\":96}" 20 0.005 --seed $seed
	done
}

# flowers-reference-recipe: baseline (a) at 128 px for 30 epochs, the setting of the PyTorch
# reference run (../shared/reference/transfer-baseline.md, setting C: 77.8 % val): does natgw's
# trainer fine-tune the fixed network as well as PyTorch does, given the same epochs? Once
# with the fan-in head init, once with the reference's N(0, 0.01).
flowers-reference-recipe() {
	baseline a flowers "$S/flowers102" "$S/flowers102" fixed30-128 "{$MBV2,\"r\":128}" 30 0.005
	HEAD_STD=0.01 baseline a flowers "$S/flowers102" "$S/flowers102" fixed30-128-head01 "{$MBV2,\"r\":128}" 30 0.005
}

# flowers-baseline-head01 and cifar10-baseline-head01: baselines (a) and (b) with the new
# head's init N(0, 0.01), against which the shipped tasks are now compared.
flowers-baseline-head01() {
	local r m
	for r in 96 128 160; do
		HEAD_STD=0.01 baseline a flowers "$S/flowers102" "$S/flowers102" "fixed20-$r-head01" "{$MBV2,\"r\":$r}" 20 0.005
	done
	for m in 50 100 175; do
		HEAD_STD=0.01 baseline b flowers "$S/flowers102" "$S/flowers102" "probe20-${m}M-head01" "$(front_arch flowers $m)" 20 0.02 --train-only classifier.
	done
}

# flowers-baseline-mix: baseline (a) at 128 px trained on NAT's batch sizes (96, 128 twice,
# 160 px, one drawn per step), then measured on val at 96, 128 and 160 px: whether the gap
# between NAT's served copy of the imported arch and (a) at 96 and 160 px comes from the share
# of training each size gets or from the weight sharing (docs/results.md).
flowers-baseline-mix() {
	local w=$WORK/flowers name=fixed20-mix-head01
	HEAD_STD=0.01 baseline a flowers "$S/flowers102" "$S/flowers102" $name "{$MBV2,\"r\":128}" 20 0.005 --resolutions 96,128,128,160
	stage "flowers: baseline (a) $name on val at 96, 128, 160 px" "$w/$name.val.json" sh -c \
		"$N search --supernet '$w/$name.safetensors' --data '$S/flowers102' --task flowers --evals 3 --initial 3 --calib 500 \
			--seed-archs '$(mbv2_seeds 96 128 160)' --out '$w/$name.val.json.tmp' >&2 && mv '$w/$name.val.json.tmp' '$w/$name.val.json'"
	local r
	go build -o bin/orteval ./bench/orteval
	for r in 96 160; do # test at 128 px is in baselines.jsonl
		stage "flowers: baseline (a) $name on test at $r px" "$w/$name-$r.test.json" sh -c "
			$N export --supernet '$w/$name.safetensors' --arch '{$MBV2,\"r\":$r}' --task flowers --out '$w/$name-$r.onnx' > '$w/$name-$r.export.txt' 2>&1 &&
			/usr/bin/python3 bench/orteval/prep.py '$w/$name-$r.onnx' '$S/flowers102' test | bin/orteval --model '$w/$name-$r.onnx' > '$w/$name-$r.test.json.tmp' &&
			mv '$w/$name-$r.test.json.tmp' '$w/$name-$r.test.json'"
	done
}

cifar10-baseline-head01() {
	local r
	for r in 96 128; do
		HEAD_STD=0.01 baseline a cifar10 "$WORK/cifar10/data" "$S/cifar10" "fixed6-$r-head01" "{$MBV2,\"r\":$r}" 6 0.005
	done
}

# flowers-lr2: the flowers recipe with its warm-up and adaptation at lr 0.002 instead of
# 0.001 (chosen under the fan-in head init, not re-tuned for N(0, 0.01)); decided on val: the
# task lands in $WORK/flowers-lr2/task.
flowers_lr() {
	local lr=$1 w=$WORK/flowers-$2
	mkdir -p "$w"
	stage "flowers lr $lr: warm-up" "$w/warm.safetensors" flowers_warm "$w/warm.safetensors" --lr "$lr"
	stage "flowers lr $lr: adapt" "$w/task/archive.json" flowers_adapt "$w/warm.safetensors" "$w/task" "$w/adapt" --lr "$lr"
	flowers_test "$w" "flowers lr $lr"
}

flowers-lr2() { flowers_lr 0.002 lr2; }

# flowers-lr2warm: flowers-lr2's warm-up (lr 0.002) followed by the recipe's adaptation at
# lr 0.001, val only: the task lands in $WORK/flowers-lr2warm/task.
flowers-lr2warm() {
	local w=$WORK/flowers-lr2warm
	mkdir -p "$w"
	[[ -e $WORK/flowers-lr2/warm.safetensors ]] || { echo "flowers-lr2warm: run flowers-lr2 first" >&2; return 1; }
	stage "flowers lr 0.002 warm-up, lr 0.001 adaptation: adapt" "$w/task/archive.json" \
		flowers_adapt "$WORK/flowers-lr2/warm.safetensors" "$w/task" "$w/adapt"
	flowers_test "$w" "flowers lr 0.002 warm-up, lr 0.001 adaptation"
}

# flowers-top: the flowers recipe's adaptation with the imported arch (MobileNetV2) at the top
# of the sandwich instead of the largest subnet (--top): trained every step and the source
# of the others' soft targets. From the recipe's warm-up file (FLOWERS_WARM overrides it),
# val only: the task lands in $WORK/flowers-top/task.
flowers-top() {
	local w=$WORK/flowers-top
	mkdir -p "$w"
	stage "flowers, the imported arch at the top: adapt" "$w/task/archive.json" \
		flowers_adapt "${FLOWERS_WARM:-$WORK/flowers/warm.safetensors}" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}"
	flowers_test "$w" "flowers, the imported arch at the top"
}

# flowers_top_seed N: flowers-top with seed N (its own first search too), val only, into
# $WORK/flowers-top-seedN/task. Seed 2 measured how far two runs of one recipe land apart in
# val hypervolume, the measure every choice above used; with seed 3, seed 2 was the best of
# three on val (bench/archivehv -best; docs/results.md).
flowers_top_seed() {
	local w=$WORK/flowers-top-seed$1
	mkdir -p "$w"
	stage "flowers, the imported arch at the top, seed $1: adapt" "$w/task/archive.json" \
		flowers_adapt "${FLOWERS_WARM:-$WORK/flowers/warm.safetensors}" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}" --seed "$1"
}
flowers-top-seed2() { flowers_top_seed 2; }
flowers-top-seed3() { flowers_top_seed 3; }

# flowers_top_sizes SEED SUFFIX: flowers-top with the top also trained at 96, 128 and 160 px
# every step (--top-sizes), so that each size the imported arch is served at gets every
# step's training, as a network fine-tuned at that size does; into
# $WORK/flowers-top-sizesSUFFIX/task, val only (docs/results.md).
flowers_top_sizes() {
	local w=$WORK/flowers-top-sizes$2
	mkdir -p "$w"
	stage "flowers, the top trained at every size, seed $1: adapt" "$w/task/archive.json" \
		flowers_adapt "${FLOWERS_WARM:-$WORK/flowers/warm.safetensors}" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}" --seed "$1" --top-sizes 96,128,160
}
flowers-top-sizes() { flowers_top_sizes 2 ""; }
# flowers-top-sizes-seed3, -seed1: the same with seeds 3 and 1 (docs/results.md).
flowers-top-sizes-seed3() { flowers_top_sizes 3 -seed3; }
flowers-top-sizes-seed1() { flowers_top_sizes 1 -seed1; }

# flowers_warm_top_sizes SEED SUFFIX [ASEED]: the recipe (--top-sizes) on a warm-up whose
# top is also the imported arch trained at 96, 128 and 160 px every step, as the
# adaptation's is; warm-up with seed SEED, adaptation with ASEED (default SEED), val only,
# into $WORK/flowers-warm-top-sizesSUFFIX/task (docs/results.md).
flowers_warm_top_sizes() {
	local w=$WORK/flowers-warm-top-sizes$2
	mkdir -p "$w"
	stage "flowers, warm-up with the top at every size, seed $1: warm-up" "$w/warm.safetensors" \
		flowers_warm "$w/warm.safetensors" --top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --seed "$1"
	stage "flowers, warm-up with the top at every size, seed $1: adapt" "$w/task/archive.json" \
		flowers_adapt "$w/warm.safetensors" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --seed "${3:-$1}"
}
# flowers-warm-top-sizes: warm-up seed 1, adaptation seed 3 (the seed shipped then).
flowers-warm-top-sizes() { flowers_warm_top_sizes 1 "" 3; }
flowers-warm-top-sizes-seed2() { flowers_warm_top_sizes 2 -seed2; }
flowers-warm-top-sizes-seed3() { flowers_warm_top_sizes 3 -seed3; }

# flowers_kd W LABEL SEED [flags...]: session 10's recipe with --top-kd in the warm-up and
# the adaptation (the top at 160 px, its largest size, teaches every other pass, the top at
# 96 and 128 px included), plus flags for both. Val only, into W/task.
flowers_kd() {
	local w=$1 label=$2 seed=$3
	shift 3
	mkdir -p "$w"
	stage "flowers, $label, seed $seed: warm-up" "$w/warm.safetensors" \
		flowers_warm "$w/warm.safetensors" --top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --top-kd --seed "$seed" "$@"
	stage "flowers, $label, seed $seed: adapt" "$w/task/archive.json" \
		flowers_adapt "$w/warm.safetensors" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --top-kd --seed "$seed" "$@"
}

# flowers-top-kd, -seed3, -seed1 (session 11): --top-kd alone. Seed 1 was the shipped recipe
# in session 12 (docs/results.md).
flowers-top-kd() { flowers_kd "$WORK/flowers-top-kd" "the top taught at its largest size" 2; }
flowers-top-kd-seed3() { flowers_kd "$WORK/flowers-top-kd-seed3" "the top taught at its largest size" 3; }
flowers-top-kd-seed1() { flowers_kd "$WORK/flowers-top-kd-seed1" "the top taught at its largest size" 1; }

# flowers-top-kdw-seed1, flowers-top-kdw, -seed3, -seed4 (session 12): the teaching pass (the top at
# 160 px, hard labels) weighed 2 = 1 + the kd ratio, as each other pass's labels plus soft
# target (--top-kd-weight 2), so that 160 px keeps its share of the gradient.
flowers-top-kdw-seed1() { flowers_kd "$WORK/flowers-top-kdw-seed1" "the top taught at its largest size weighed 2" 1 --top-kd-weight 2; }
flowers-top-kdw() { flowers_kd "$WORK/flowers-top-kdw" "the top taught at its largest size weighed 2" 2 --top-kd-weight 2; }
flowers-top-kdw-seed3() { flowers_kd "$WORK/flowers-top-kdw-seed3" "the top taught at its largest size weighed 2" 3 --top-kd-weight 2; }
flowers-top-kdw-seed4() { flowers_kd "$WORK/flowers-top-kdw-seed4" "the top taught at its largest size weighed 2" 4 --top-kd-weight 2; }

# flowers_avg RUN SEED [flags...]: RUN (one of the flowers_kd stages above, run first where
# not done) with --average 3: its rounds' end weights and first two archives are copied into
# $WORK/RUN-avg, so that only the final search runs again, on the mean of the warm-up's and
# both fine-tuning rounds' end weights (session 13, docs/results.md). Val only.
flowers_avg() {
	local run=$1 seed=$2
	shift 2
	local src=$WORK/$run w=$WORK/$run-avg
	"$run"
	copy_rounds "$src/adapt" "$w/adapt" weights-0.safetensors weights-1.safetensors weights-2.safetensors archive-0.json archive-1.json
	stage "flowers, $run, final search on the mean of its rounds' weights" "$w/task/archive.json" \
		flowers_adapt "$src/warm.safetensors" "$w/task" "$w/adapt" --top "{$MBV2,\"r\":128}" --top-sizes 96,128,160 --top-kd \
		--seed "$seed" --average 3 "$@"
}

flowers-top-kd-seed1-avg() { flowers_avg flowers-top-kd-seed1 1; }
flowers-top-kd-avg() { flowers_avg flowers-top-kd 2; }
flowers-top-kd-seed3-avg() { flowers_avg flowers-top-kd-seed3 3; }
flowers-top-kdw-seed1-avg() { flowers_avg flowers-top-kdw-seed1 1 --top-kd-weight 2; }
flowers-top-kdw-avg() { flowers_avg flowers-top-kdw 2 --top-kd-weight 2; }
flowers-top-kdw-seed3-avg() { flowers_avg flowers-top-kdw-seed3 3 --top-kd-weight 2; }
flowers-top-kdw-seed4-avg() { flowers_avg flowers-top-kdw-seed4 4 --top-kd-weight 2; }

# flowers-baseline-cycles: baseline (a)'s recipe trained in NAT's three cycles (10 + 5 + 5
# epochs, each its own cosine, each from the last's end), then the mean of the three ends
# (natgw supernet average); val (recalibrated) and test, the last end both with the
# training's running statistics and recalibrated (export --calib-data). Whether averaging's
# gain is NAT's alone (session 13, docs/results.md).
flowers-baseline-cycles() {
	local w=$WORK/flowers/cycles r c ep prev out arch v m how extra
	mkdir -p "$w"
	go build -o bin/orteval ./bench/orteval
	for r in 96 128 160; do
		arch="{$MBV2,\"r\":$r}" prev=$WORK/flowers/imported.safetensors
		for c in 1 2 3; do
			ep=5
			[[ $c == 1 ]] && ep=10
			out=$w/a$r-c$c.safetensors
			stage "flowers: (a) at $r px, cycle $c ($ep epochs)" "$out" sh -c "
				$N train --supernet '$prev' --data '$S/flowers102' --resolution $r --batch 32 --epochs $ep --lr 0.005 \
					--weight-decay 4e-5 --dropout 0.2 --crop-scale 0.5 --fixed '$arch' --calib 500 --head-std 0.01 \
					--out '$out' > '$w/a$r-c$c.train.json'"
			prev=$out
		done
		stage "flowers: (a) at $r px, the cycles' mean" "$w/a$r-avg.safetensors" \
			$N supernet average --in "$w/a$r-c1.safetensors,$w/a$r-c2.safetensors,$w/a$r-c3.safetensors" --out "$w/a$r-avg.safetensors"
		for v in c3:ema c3:calib avg:calib; do
			m=${v%:*} how=${v#*:}
			stage "flowers: (a) at $r px, $m on val" "$w/a$r-$m.val.json" sh -c "
				$N search --supernet '$w/a$r-$m.safetensors' --data '$S/flowers102' --task flowers --evals 2 --initial 2 --calib 500 \
					--seed-archs '[$arch]' --out '$w/a$r-$m.val.json.tmp' >&2 && mv '$w/a$r-$m.val.json.tmp' '$w/a$r-$m.val.json'"
			extra=""
			[[ $how == calib ]] && extra="--calib-data $S/flowers102"
			stage "flowers: (a) at $r px, $m ($how) on test" "$w/a$r-$m-$how.test.json" sh -c "
				$N export --supernet '$w/a$r-$m.safetensors' --arch '$arch' --task flowers --out '$w/a$r-$m-$how.onnx' $extra >&2 &&
				/usr/bin/python3 bench/orteval/prep.py '$w/a$r-$m-$how.onnx' '$S/flowers102' test |
					bin/orteval --model '$w/a$r-$m-$how.onnx' > '$w/a$r-$m-$how.test.json.tmp' &&
				mv '$w/a$r-$m-$how.test.json.tmp' '$w/a$r-$m-$how.test.json'"
		done
	done
}

# flowers-final80: the Flowers task (run first where not done) with its final search
# continued from 40 to 80 measured subnets on the same averaged weights: its adaptation's
# work folder is copied into $WORK/flowers-final80 (session 14, docs/results.md). Val only.
flowers-final80() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	local src=$WORK/flowers w=$WORK/flowers-final80
	flowers
	if [[ ! -d $w/adapt ]]; then
		mkdir -p "$w"
		cp -r "$src/adapt" "$w/adapt.tmp"
		mv "$w/adapt.tmp" "$w/adapt"
	fi
	stage "flowers: final search continued to 80 subnets" "$w/task/archive.json" \
		flowers_adapt "$src/warm.safetensors" "$w/task" "$w/adapt" \
		"${FLOWERS_TOP[@]}" --seed 1 --average 3 --final-evals 80
}

# cifar10-avg: the CIFAR-10 task (run first where not done) with --average 2: its round end
# weights and first archive are copied into $WORK/cifar10-avg, so that only the final search
# runs again, on the mean of the warm-up's and the fine-tuning round's end weights
# (session 14, docs/results.md). Val only.
cifar10-avg() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	local src=$WORK/cifar10 w=$WORK/cifar10-avg
	cifar10
	copy_rounds "$src/adapt" "$w/adapt" weights-0.safetensors weights-1.safetensors archive-0.json
	stage "cifar10: final search on the mean of the warm-up's and the round's weights" "$w/task/archive.json" \
		cifar10_adapt "$src/warm.safetensors" "$w/task" "$w/adapt" --average 2
}

# flowers_from_warm NAME SEED LABEL [flags...]: the shipped task's adaptation (flowers, run
# first where not done) from its own warm-up file, with SEED and FLAGS (later flags win), into
# $WORK/NAME; session 15's val-only variants (docs/results.md). With seed 1 the first search
# measures the shipped task's start weights with its seed, whatever the training flags, so
# its weights and archive are copied.
flowers_from_warm() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	local name=$1 seed=$2 label=$3 src=$WORK/flowers w=$WORK/$1
	shift 3
	flowers
	if [[ $seed == 1 ]]; then
		copy_rounds "$src/adapt" "$w/adapt" weights-0.safetensors archive-0.json
	fi
	stage "flowers, $label, seed $seed" "$w/task/archive.json" \
		flowers_adapt "$src/warm.safetensors" "$w/task" "$w/adapt" \
		"${FLOWERS_TOP[@]}" --average 3 --seed "$seed" "$@"
}

# The adaptation's 10 epochs as 5 rounds of 2 (each its own cosine, NAT's search after each),
# serving the mean of all 6 cycle ends; or as 1 round of 10, serving the mean of 2.
flowers-rounds5() { flowers_from_warm flowers-rounds5 1 "5 rounds of 2 epochs, all 6 ends averaged" --iterations 5 --epochs 2 --average 6; }
flowers-rounds5-seed2() { flowers_from_warm flowers-rounds5-seed2 2 "5 rounds of 2 epochs, all 6 ends averaged" --iterations 5 --epochs 2 --average 6; }
flowers-rounds1() { flowers_from_warm flowers-rounds1 1 "1 round of 10 epochs, averaged with the warm-up's end" --iterations 1 --epochs 10 --average 2; }
# A quarter of the sandwich's batches moved from 128 to 96 px, where the front's lead over (a)
# is smallest.
flowers-res96x2() { flowers_from_warm flowers-res96x2 1 "batches at 96,96,128,160 px" --train-resolutions 96,96,128,160; }
# A second draw of the shipped adaptation, paired with flowers-rounds5-seed2.
flowers-adapt-seed2() { flowers_from_warm flowers-adapt-seed2 2 "the shipped adaptation"; }
# The rounds' peak learning rate halved (the warm-up keeps 0.001).
flowers-adapt-lr5e4() { flowers_from_warm flowers-adapt-lr5e4 1 "the shipped adaptation at lr 0.0005" --lr 0.0005; }
# The rounds' peak learning rate doubled and tripled (session 16; the warm-up keeps 0.001).
flowers-adapt-lr2e3() { flowers_from_warm flowers-adapt-lr2e3 1 "the shipped adaptation at lr 0.002" --lr 0.002; }
flowers-adapt-lr3e3() { flowers_from_warm flowers-adapt-lr3e3 1 "the shipped adaptation at lr 0.003" --lr 0.003; }

# flowers_with NAME LABEL [warm-up flags...] -- [adaptation flags...]: the shipped flowers
# recipe (FLOWERS_TOP, seed 1, --average 3) with the flags added to its warm-up and its
# adaptation (a flag given again overrides the recipe's), run anew in $WORK/NAME from the
# import, then its crop choice. Val only: test is read by hand once a candidate is decided.
flowers_with() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Cooperlake}
	local name=$1 label=$2 w=$WORK/$1 warm=()
	shift 2
	while (($#)) && [[ $1 != -- ]]; do
		warm+=("$1")
		shift
	done
	(($#)) && shift # the --; without one, every flag was the warm-up's
	flowers_import
	mkdir -p "$w"
	stage "flowers, $label: warm-up" "$w/warm.safetensors" flowers_warm "$w/warm.safetensors" \
		"${FLOWERS_TOP[@]}" --seed 1 "${warm[@]}"
	stage "flowers, $label: adapt" "$w/task/archive.json" flowers_adapt "$w/warm.safetensors" "$w/task" "$w/adapt" \
		"${FLOWERS_TOP[@]}" --seed 1 --average 3 "$@"
	tune_crop "flowers, $label" "$w/task" "$S/flowers102" "$w"
}

# flowers-top224 (session 18): the top also trained at 224 px every step, so that its 224 px
# pass is the teacher (--top-kd), and a fifth of the adaptation's batches at 224 px. The
# shipped front stops rising at 153 M because nothing trains above 160 px; this asks whether
# training at the ImageNet scale buys the 300 M end of the range.
flowers-top224() {
	flowers_with flowers-top224 "top at 224 px too" --top-sizes 96,128,160,224 -- \
		--top-sizes 96,128,160,224 --train-resolutions 96,128,128,160,224
}
# flowers-crop25 (session 18): the random resized crop down to a quarter of the image instead
# of half, in the warm-up and the adaptation: the runs end at 99 % training accuracy, so
# stronger augmentation may pay.
flowers-crop25() { flowers_with flowers-crop25 "crop scale 0.25" --crop-scale 0.25 -- --crop-scale 0.25; }

# flowers-baseline-redraw (session 16): (a)'s three runs of flowers-baseline-head01 drawn again,
# on the Haswell kernel (the reported ones are no longer at hand): how far (a) itself moves
# between draws. Measured on val and test as (a) is; flowers-crop uses the 96 px one.
flowers_redraw() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	HEAD_STD=0.01 baseline a flowers "$S/flowers102" "$S/flowers102" "fixed20-$1-head01-redraw" "{$MBV2,\"r\":$1}" 20 0.005
}
flowers-baseline-redraw() {
	local r
	flowers_import
	for r in 96 128 160; do flowers_redraw $r; done
}
# flowers-baseline-224 (session 18): (a) at 224 px, the 300 M target's cost (MobileNetV2's own
# size), drawn and measured as the three above are, crop 1 and its own val-chosen crop.
flowers-baseline-224() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	flowers_import
	flowers_redraw 224
	baseline_crop flowers "$S/flowers102" "$S/flowers102" fixed20-224-head01-redraw d62c74cedfd6
}

# task_copy TASK WEIGHTS DIR HASH [CROP]: a task folder DIR with TASK's calibration images
# and labels, WEIGHTS as its supernet, only the archive entries whose hash starts with HASH
# (test numbers dropped), and one crop for every size: CROP, else TASK's template's.
task_copy() {
	local task=$1 weights=$2 d=$3 hash=$4 crop=${5:-}
	mkdir -p "$d"
	cp -r "$task/calib" "$task/labels.txt" "$d/"
	cp "$weights" "$d/supernet.safetensors"
	python3 - "$task" "$d" "$hash" "$crop" <<'PY'
import json, sys
task, d, hash, crop = sys.argv[1:]
t = json.load(open(f"{task}/task.json"))
t.pop("crop_by_resolution", None)
if crop:
    t["preprocess"]["crop_fraction"] = float(crop)
json.dump(t, open(f"{d}/task.json", "w"), indent=2)
a = json.load(open(f"{task}/archive.json"))
a["entries"] = [e for e in a["entries"] if e["hash"].startswith(hash)]
for e in a["entries"]:
    e.pop("test_top1", None)
json.dump(a, open(f"{d}/archive.json", "w"), indent=2)
PY
}

# crop_probe TASK WEIGHTS NAME CROP [HASH]: measures TASK's front, or only its entry whose hash
# starts with HASH, on val with the centre crop CROP instead of the task's own, in a copy of the
# task folder whose supernet is WEIGHTS; the lines go to $WORK/flowers-crop/NAME-CROP.jsonl.
crop_probe() {
	local task=$1 weights=$2 name=$3 crop=$4 hash=${5:-} d=$WORK/flowers-crop/$3-$4
	[[ -e $d.jsonl ]] && return
	rm -rf "$d"
	task_copy "$task" "$weights" "$d" "$hash" "$crop"
	$N evaluate --task "$d" --data "$S/flowers102" --split val > "$d.jsonl.tmp" && mv "$d.jsonl.tmp" "$d.jsonl"
}

# flowers-crop (session 16): what a centre crop at eval (crop_fraction < 1: the objects larger,
# as the training's random crops show them) does on val. The shipped task's front at 0.875; its
# 96 px imported arch and the same arch of a redraw of (a) at 0.9375, 0.875 and 0.75. The redraw
# is flowers-baseline-redraw's at 96 px. Session 16 ran it on the task as it was before
# session 17's crops (git history); on today's task the front it measures differs.
flowers-crop() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	local a=fixed20-96-head01-redraw c hash=8208c2369668 # the imported arch at 96 px
	flowers_redraw 96
	crop_probe "$OUT/flowers" "$OUT/flowers/supernet.safetensors" nat-front 0.875
	for c in 1 0.9375 0.875 0.75; do
		crop_probe "$OUT/flowers" "$OUT/flowers/supernet.safetensors" nat-96 $c $hash
		crop_probe "$OUT/flowers" "$WORK/flowers/$a.safetensors" a-96 $c $hash
	done
	python3 - "$WORK"/flowers-crop/*.jsonl >&2 <<'PY'
import json, sys
for f in sys.argv[1:]:
    for l in open(f):
        e = json.loads(l)
        print("%s: %s %d px %.1f M: val %.2f %% (the shipped task's archive: %.2f)" % (f.split("/")[-1][:-6], e["hash"][:12], e["r"], e["madds"] / 1e6, 100 * e["top1"], 100 * e["val_top1"]))
PY
}

# baseline_crop TASK VALDATA TESTDATA NAME HASH (session 17): baseline (a)'s network NAME
# given the shipped task's crop rule: in a task folder of its own (the task's calibration
# images, labels and its archive entry HASH, the same arch), its crop chosen on VALDATA's val
# by natgw tune-crop as the task's were, measured on TESTDATA's test at crop 1 and at that
# crop, both as the gateway serves (natgw evaluate).
baseline_crop() {
	local task=$1 val=$2 test=$3 name=$4 hash=$5 r d
	r=${name#*-}
	r=${r%%-*}
	d=$WORK/$task-crop/a-$r
	if [[ ! -e $d/task.json ]]; then
		rm -rf "$d.tmp"
		task_copy "$OUT/$task" "$WORK/$task/$name.safetensors" "$d.tmp" "$hash"
		mv "$d.tmp" "$d"
	fi
	stage "$task: (a) $r px test at crop 1" "$d.test-crop1.jsonl" sh -c "$N evaluate --task '$d' --data '$test' --split test --record=false > '$d.tmp.jsonl' && mv '$d.tmp.jsonl' '$d.test-crop1.jsonl'"
	stage "$task: (a) $r px tune crop" "$d.crops.out" sh -c "$N tune-crop --task '$d' --data '$val' --log '$d.crops.jsonl' --write > '$d.tmp.out' && mv '$d.tmp.out' '$d.crops.out'"
	stage "$task: (a) $r px test at its crop" "$d.test-tuned.jsonl" sh -c "$N evaluate --task '$d' --data '$test' --split test --record=false > '$d.tmp.jsonl' && mv '$d.tmp.jsonl' '$d.test-tuned.jsonl'"
}

# baseline_crop_table TASK: baseline_crop's results, one line per network.
baseline_crop_table() {
	python3 - "$WORK/$1-crop"/a-*.crops.out >&2 <<'PY'
import json, sys
for f in sys.argv[1:]:
    b = f[:-len(".crops.out")]
    crop = json.loads(open(f).read().splitlines()[0])["crop"]
    t1 = json.loads(open(b + ".test-crop1.jsonl").read().splitlines()[0])
    tt = json.loads(open(b + ".test-tuned.jsonl").read().splitlines()[0])
    v = {json.loads(l)["crop"]: json.loads(l)["top1"] for l in open(b + ".crops.jsonl")}
    print("(a) %d px: val %s; chosen crop %g; test %.2f %% at crop 1, %.2f %% at %g" % (t1["r"],
        ", ".join("%g: %.2f" % (c, 100 * v[c]) for c in sorted(v, reverse=True)), crop, 100 * t1["top1"], 100 * tt["top1"], crop))
PY
}

# flowers-baseline-crop, cifar10-baseline-crop (session 17): (a) redrawn and measured with
# the shipped tasks' crop rule. CIFAR-10's (a) reruns cifar10-baseline-head01's command on
# its kernel (Haswell), so it redraws the reported networks.
flowers-baseline-crop() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	flowers-baseline-redraw
	baseline_crop flowers "$S/flowers102" "$S/flowers102" fixed20-96-head01-redraw 8208c2369668
	baseline_crop flowers "$S/flowers102" "$S/flowers102" fixed20-128-head01-redraw 832fc5e4c96e
	baseline_crop flowers "$S/flowers102" "$S/flowers102" fixed20-160-head01-redraw e511f1a9ee6e
	baseline_crop_table flowers
}

cifar10-baseline-crop() {
	local -x OPENBLAS_CORETYPE=${BLAS_CORE:-Haswell}
	cifar10_data
	stage "cifar10: import" "$WORK/cifar10/imported.safetensors" cifar10_import
	cifar10-baseline-head01
	baseline_crop cifar10 "$WORK/cifar10/data" "$S/cifar10" fixed6-96-head01 8208c2369668
	baseline_crop cifar10 "$WORK/cifar10/data" "$S/cifar10" fixed6-128-head01 832fc5e4c96e
	baseline_crop_table cifar10
}

for t in "${@:-flowers cifar10}"; do
	for x in $t; do "$x"; done
done
