package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/task"
)

// cmdTuneCrop chooses the eval centre crop per resolution on val (nat.ChooseCrops) and,
// with --write, records it in the task folder. Progress lines go to stderr, one JSON line
// per resolution's choice to stdout.
func cmdTuneCrop(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "tune-crop")
	dir := fs.String("task", "", "task folder")
	data := fs.String("data", "", "image-folder data set with a val split (no other split is read)")
	cropsArg := fs.String("crops", "1,0.9375,0.875,0.75", "candidate centre-crop fractions")
	log := fs.String("log", "", "JSON lines of every measurement; rows already there are reused, so a killed run resumes (default: <task>/tune-crop.jsonl)")
	write := fs.Bool("write", false, "record the chosen crops, the re-measured val accuracies and the statistics of the new crops in the task folder")
	batch := fs.Int("batch", 100, "forward batch size")
	if err := parse(fs, args, "task", "data"); err != nil {
		return helpOK(err)
	}
	crops, err := parseCrops(*cropsArg)
	if err != nil {
		return usageError{"tune-crop: --crops: " + err.Error()}
	}
	if *batch < 1 {
		return usageError{"tune-crop: --batch ≥ 1"}
	}
	choices, err := nat.ChooseCrops(ctx, nat.CropConfig{Task: *dir, Data: *data, Crops: crops, Log: *log, Write: *write, Batch: *batch},
		func(r nat.CropRow, done, total int, eta time.Duration) {
			fmt.Fprintf(env.stderr, "tune-crop: %d/%d %s %d px crop %g: val top-1 %.4f (archived %.4f); ETA %s\n",
				done, total, r.Hash[:12], r.R, r.Crop, r.Top1, r.Archived, eta.Round(time.Second))
		})
	if err != nil {
		return err
	}
	for _, ch := range choices {
		var parts []string
		for _, c := range crops {
			parts = append(parts, fmt.Sprintf("%g: %.4f", c, ch.Means[c]))
		}
		fmt.Fprintf(env.stderr, "tune-crop: %d px (%d entries): crop %g; mean val top-1 %s\n", ch.R, ch.Entries, ch.Crop, strings.Join(parts, ", "))
		line, _ := json.Marshal(ch) // plain struct
		fmt.Fprintln(env.stdout, string(line))
	}
	if *write {
		fmt.Fprintf(env.stderr, "tune-crop: wrote %s's task.json, archive.json and %s; test accuracies dropped: run natgw evaluate --split test again\n",
			*dir, task.BNStatsFile)
	}
	return nil
}

// parseCrops reads a comma-separated list of crop fractions, each in
// [preprocess.MinCropFraction, 1], no repeats.
func parseCrops(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		c, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		if !(c >= preprocess.MinCropFraction && c <= 1) {
			return nil, fmt.Errorf("%g not in [%g, 1]", c, preprocess.MinCropFraction)
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("%g given twice", c)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}
