// Command calibimages measures what calibrating BatchNorm on fewer of a task's calibration
// images costs in val accuracy and saves in time: every measured archive entry is
// recalibrated on N of the task's stored calibration images (evenly spaced) for each N
// given and measured on the data set's val split, as the archive was. N equal to all of
// them must reproduce the archive's accuracies exactly (checked). Prints one JSON line per
// entry and N, then a summary line per N.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "calibimages:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("task", "", "task folder")
	data := flag.String("data", "", "image-folder data set with the val split the archive was measured on")
	counts := flag.String("images", "64,128,256", "calibration image counts to compare with all of them")
	batch := flag.Int("batch", task.CalibBatch, "calibration batch of those counts (all of them always use the task's, as the archive did)")
	timingOnly := flag.Bool("timing-only", false, "only time the recalibrations (5 of each count), measure no accuracy")
	flag.Parse()
	t, err := task.Load(*dir)
	if err != nil {
		return err
	}
	all := len(t.Calib)
	var ns []int
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > all {
			return fmt.Errorf("--images %q: counts between 1 and %d", f, all)
		}
		ns = append(ns, n)
	}
	ns = append(ns, all)
	ctx := context.Background()
	evs := map[int]*specializer.SubnetEvaluator{}
	for _, n := range ns {
		b := *batch
		if n == all {
			b = task.CalibBatch
		}
		if evs[n], err = specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
			Supernet: t.Supernet, Data: *data, Template: t.Manifest.Preprocess, Crops: t.CropByResolution,
			Calib: t.Calib, CalibImages: n, CalibBatch: b, MaxTensorBytes: 1,
		}); err != nil {
			return err
		}
	}
	type row struct {
		Hash       string  `json:"hash"`
		MAdds      int64   `json:"madds"`
		R          int     `json:"r"`
		Images     int     `json:"images"`
		Batch      int     `json:"batch"`
		Top1       float64 `json:"top1"`
		Delta      float64 `json:"delta"` // top1 − the all-images top1, in points
		ArchiveTop int     `json:"-"`
	}
	deltas := map[int][]float64{}
	enc := json.NewEncoder(os.Stdout)
	for _, e := range t.Archive.Snapshot() {
		if e.Predicted || *timingOnly {
			continue
		}
		got := map[int]float64{}
		for _, n := range ns {
			m, err := evs[n].Evaluate(ctx, e.Arch)
			if err != nil {
				return err
			}
			got[n] = m.Top1
		}
		if got[all] != e.Top1 {
			return fmt.Errorf("%s: %d images give %.6f, the archive says %.6f: not the archive's measurement", e.Hash[:12], all, got[all], e.Top1)
		}
		for _, n := range ns {
			d := 100 * (got[n] - got[all])
			deltas[n] = append(deltas[n], d)
			b := *batch
			if n == all {
				b = task.CalibBatch
			}
			enc.Encode(row{Hash: e.Hash[:12], MAdds: e.MAdds, R: e.Arch.R, Images: n, Batch: b, Top1: got[n], Delta: d})
		}
	}
	// Time of one recalibration of the entry nearest 150 M MAdds, per N.
	var near task.Entry
	for _, e := range t.Archive.Snapshot() {
		if !e.Predicted && (near.Hash == "" || math.Abs(float64(e.MAdds)-150e6) < math.Abs(float64(near.MAdds)-150e6)) {
			near = e
		}
	}
	for _, n := range ns {
		d := deltas[n]
		slices.Sort(d)
		mean := 0.0
		for _, v := range d {
			mean += v
		}
		mean /= max(1, float64(len(d)))
		sub, err := t.Supernet.Extract(near.Arch)
		if err != nil {
			return err
		}
		var times []float64
		reps := 3
		if *timingOnly {
			reps = 5
		}
		for range reps {
			s := *sub
			t0 := time.Now()
			calib, b := task.CalibSample(t.Calib, n), *batch
			if n == all {
				b = task.CalibBatch
			}
			if err := s.Recalibrate(ctx, task.CalibBatchesOf(calib, t.Preprocess(sub.Resolution), b)); err != nil {
				return err
			}
			times = append(times, time.Since(t0).Seconds())
		}
		slices.Sort(times)
		b := *batch
		if n == all {
			b = task.CalibBatch
		}
		row := map[string]any{"task": t.Name, "images": n, "batch": b, "entries": len(d),
			"recalibrate_s": map[string]any{"madds": near.MAdds, "r": near.Arch.R, "min": round2(times[0]), "median": round2(times[len(times)/2]), "max": round2(times[len(times)-1])}}
		if len(d) > 0 {
			row["mean_delta_points"], row["min_delta"], row["median_delta"], row["max_delta"] = round2(mean), round2(d[0]), round2(d[len(d)/2]), round2(d[len(d)-1])
		}
		enc.Encode(row)
	}
	return nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
