#!/usr/bin/env bash
# The quick preset measured on a task of one's own, as docs/results.md reports it ("The quick
# preset on a task of one's own"):
#   1. the data: 15 Tiny-ImageNet classes (every 13th of the 200 in sorted-wnid order), their
#      80 train images each (1,200 in all) as train, their 10 official validation images each
#      as test; no val/, so natgw task create slices one from train;
#   2. natgw task create --preset quick on it, timed (wall clock, peak RSS);
#   3. the two baselines, each trained for the seconds step 2 took (bench/quick-baselines.sh);
#   4. the task's claims checked from outside natgw (scripts/check-claims.sh) at budgets that
#      pick the front's subnets the baselines are compared with.
#   bench/quick.sh [WORK]   (default work/quick; a rerun reuses the data and the finished task)
# Step 2 wants the machine to itself: its time is what the baselines get.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
shared="$(cd "${NATGW_SHARED:-$root/../shared}" && pwd)"
work=${1:-work/quick}
mkdir -p "$work" bin
go build -o bin/natgw ./cmd/natgw

data=$work/tin15-data
if [[ ! -d $data/test ]]; then
	rm -rf "$data.tmp"
	mkdir -p "$data.tmp"
	src=$shared/data/tinyimagenet
	printf 'index\twnid\twords\n' >"$data.tmp/classes.tsv"
	i=0
	while IFS=$'\t' read -r index wnid words; do
		((index % 13 == 0 && index < 195)) || continue
		printf '%d\t%s\t%s\n' "$i" "$wnid" "$words" >>"$data.tmp/classes.tsv"
		mkdir -p "$data.tmp/train/$wnid" "$data.tmp/test/$wnid"
		cp "$src/train/$wnid"/*.jpg "$data.tmp/train/$wnid/"
		cp "$src/val/$wnid"/*.jpg "$data.tmp/test/$wnid/"
		i=$((i + 1))
	done < <(tail -n +2 "$src/classes.tsv")
	mv "$data.tmp" "$data"
fi

if [[ ! -f $work/tin15.json ]]; then
	rm -rf "$work/tin15"
	/usr/bin/time -f '%e %M' -o "$work/tin15.time" bin/natgw task create --name tin15 --data "$data" --preset quick --description "15 Tiny-ImageNet classes (64 px)" \
		--out "$work/tin15" --work "$work/tin15.work" >"$work/tin15.json.tmp" 2>"$work/tin15.err"
	mv "$work/tin15.json.tmp" "$work/tin15.json"
fi
read -r wall kib <"$work/tin15.time"
seconds=${wall%.*}
echo "task create: $wall s wall, peak RSS $((kib / 1024)) MiB" >&2

bash bench/quick-baselines.sh "$work/tin15.work" "$work/tin15.work/data" "$data" "$seconds" 96 128 | tee "$work/baselines.jsonl"

models=$work/models
mkdir -p "$models"
ln -sfn "$(cd "$work/tin15" && pwd)" "$models/tin15"
MODELS=$models DATA=$data bash scripts/check-claims.sh tin15:25M tin15:45M tin15:60M tin15:100M
