package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/task"
)

// cropRow is one line of natgw tune-crop's output: one archive entry measured on val at
// one candidate crop.
type cropRow struct {
	Hash  string  `json:"hash"`
	MAdds int64   `json:"madds"`
	R     int     `json:"r"`
	Crop  float64 `json:"crop"`
	Top1  float64 `json:"top1"`
	// Supernet is the task's supernet version: rows of other weights are never reused.
	Supernet string `json:"supernet"`
	// Archived is the entry's val top-1 in the archive when it was measured.
	Archived float64 `json:"archived_top1"`
}

// cropChoice is a resolution's chosen crop and the mean val top-1 of every candidate.
type cropChoice struct {
	R       int
	Crop    float64
	Entries int
	Means   map[float64]float64
}

// cmdTuneCrop chooses the eval centre crop per resolution on val: every measured archive
// entry is measured at every candidate crop as it is served (BatchNorm rebuilt on the
// calibration images with the same crop), and each resolution takes the crop with the
// best mean top-1 over its entries. With --write it records the choice in task.json and
// each entry's val top-1 at its resolution's crop in archive.json, and drops the test
// accuracies, which were measured with the old preprocessing (natgw evaluate measures
// them again). Only the val split can be read.
func cmdTuneCrop(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "tune-crop")
	dir := fs.String("task", "", "task folder")
	data := fs.String("data", "", "image-folder data set with a val split (no other split is read)")
	cropsArg := fs.String("crops", "1,0.9375,0.875,0.75", "candidate centre-crop fractions")
	log := fs.String("log", "", "JSON lines of every measurement; rows already there are reused, so a killed run resumes (default: <task>/tune-crop.jsonl)")
	write := fs.Bool("write", false, "record the chosen crops and the re-measured val accuracies in the task folder")
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
	if *log == "" {
		*log = filepath.Join(*dir, "tune-crop.jsonl")
	}
	t, err := loadRemakingStats(env, "tune-crop", *dir)
	if err != nil {
		return err
	}
	set, err := dataset.Open(*data, task.SplitVal)
	if err != nil {
		return err
	}
	if !slices.Equal(set.Labels, t.Labels) {
		return fmt.Errorf("tune-crop: %s/val's classes are not the task's labels in order", *data)
	}
	version := t.Supernet.Version()
	done, err := readCropLog(*log, version)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	var entries []task.Entry
	for _, e := range t.Archive.Snapshot() {
		if !e.Predicted {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return errors.New("tune-crop: the archive has no measured entries")
	}
	var rows []cropRow
	total, todo, start := len(entries)*len(crops), 0, time.Now()
	for _, e := range entries {
		for _, c := range crops {
			if _, ok := done[cropKey(e.Hash, c)]; !ok {
				todo++
			}
		}
	}
	measured := 0
	for _, e := range entries {
		for _, c := range crops {
			row, ok := done[cropKey(e.Hash, c)]
			if !ok {
				p := t.Preprocess(e.Arch.R)
				p.CropFraction = c
				top1, _, err := measure(ctx, t, e.Arch, set, p, *batch)
				if err != nil {
					return fmt.Errorf("tune-crop: %s/val: %w", *data, err)
				}
				row = cropRow{Hash: e.Hash, MAdds: e.MAdds, R: e.Arch.R, Crop: c, Top1: top1, Archived: e.Top1, Supernet: version}
				line, _ := json.Marshal(row) // plain struct
				if _, err := fmt.Fprintln(f, string(line)); err != nil {
					return err
				}
				measured++
				el := time.Since(start)
				eta := time.Duration(float64(el) / float64(measured) * float64(todo-measured))
				fmt.Fprintf(env.stderr, "tune-crop: %d/%d %s %d px crop %g: val top-1 %.4f (archived %.4f); ETA %s\n",
					total-todo+measured, total, e.Hash[:12], e.Arch.R, c, top1, e.Top1, eta.Round(time.Second))
			}
			rows = append(rows, row)
		}
	}
	choices := chooseCrops(rows, crops)
	for _, ch := range choices {
		var parts []string
		for _, c := range crops {
			parts = append(parts, fmt.Sprintf("%g: %.4f", c, ch.Means[c]))
		}
		fmt.Fprintf(env.stderr, "tune-crop: %d px (%d entries): crop %g; mean val top-1 %s\n", ch.R, ch.Entries, ch.Crop, strings.Join(parts, ", "))
		line, _ := json.Marshal(map[string]any{"r": ch.R, "crop": ch.Crop, "entries": ch.Entries})
		fmt.Fprintln(env.stdout, string(line))
	}
	if !*write {
		return nil
	}
	m := t.Manifest
	m.CropByResolution = maps.Clone(m.CropByResolution)
	if m.CropByResolution == nil {
		m.CropByResolution = map[int]float64{}
	}
	chosen := map[int]float64{}
	for _, ch := range choices {
		m.CropByResolution[ch.R], chosen[ch.R] = ch.Crop, ch.Crop
	}
	for _, r := range rows {
		if r.Crop == chosen[r.R] {
			t.Archive.Remeasure(r.Hash, r.Top1)
		}
	}
	// Two files, no transaction: if the second write fails they disagree until a rerun with
	// --write, which measures nothing again (every row is in the log).
	if err := t.Archive.Save(filepath.Join(*dir, task.ArchiveFile)); err != nil {
		return err
	}
	if err := task.SaveManifest(*dir, m); err != nil {
		return err
	}
	// The stored statistics were rebuilt with the old crops: made again with the new ones.
	t, err = loadRemakingStats(env, "tune-crop", *dir)
	if err != nil {
		return err
	}
	if _, err := t.StoreStats(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "tune-crop: wrote %s, %s and %s; test accuracies dropped: run natgw evaluate --split test again\n",
		filepath.Join(*dir, task.ManifestFile), filepath.Join(*dir, task.ArchiveFile), filepath.Join(*dir, task.BNStatsFile))
	return nil
}

// parseCrops reads a comma-separated list of crop fractions: each in
// [preprocess.MinCropFraction, 1], no repeats; returned largest first, so that ties go to
// the larger crop (less of the image thrown away).
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

// chooseCrops picks, per resolution, the crop of crops (largest first) with the highest
// mean top-1 over the rows at that resolution; the first of equal means wins.
func chooseCrops(rows []cropRow, crops []float64) []cropChoice {
	sum := map[int]map[float64]float64{}
	count := map[int]map[float64]int{}
	for _, r := range rows {
		if sum[r.R] == nil {
			sum[r.R], count[r.R] = map[float64]float64{}, map[float64]int{}
		}
		sum[r.R][r.Crop] += r.Top1
		count[r.R][r.Crop]++
	}
	var out []cropChoice
	for _, r := range slices.Sorted(maps.Keys(sum)) {
		ch := cropChoice{R: r, Means: map[float64]float64{}, Entries: count[r][crops[0]]}
		best := -1.0
		for _, c := range crops {
			m := sum[r][c] / float64(count[r][c])
			ch.Means[c] = m
			if m > best {
				best, ch.Crop = m, c
			}
		}
		out = append(out, ch)
	}
	return out
}

func cropKey(hash string, crop float64) string {
	return hash + "@" + strconv.FormatFloat(crop, 'g', -1, 64)
}

// readCropLog reads the rows of an earlier, possibly killed, run of the supernet version;
// a missing file is empty. A torn last line (the run killed mid-write) is cut off so that
// new rows append cleanly; any other bad line, or a row of other weights, is an error.
func readCropLog(path, version string) (map[string]cropRow, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]cropRow{}, nil
	}
	if err != nil {
		return nil, err
	}
	done := map[string]cropRow{}
	good := 0 // bytes of whole, valid lines
	for i, rest := 1, data; len(rest) > 0; i++ {
		line, after, whole := bytes.Cut(rest, []byte("\n"))
		var r cropRow
		if err := json.Unmarshal(line, &r); err != nil || r.Hash == "" || !whole {
			if len(after) == 0 {
				break // the torn last line
			}
			return nil, fmt.Errorf("%s:%d: not a tune-crop row", path, i)
		}
		if r.Supernet != version {
			return nil, fmt.Errorf("%s:%d: measured with supernet %q, the task's is %q: use another --log", path, i, r.Supernet, version)
		}
		done[cropKey(r.Hash, r.Crop)] = r
		good += len(line) + 1
		rest = after
	}
	if good < len(data) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, err
		}
	}
	return done, nil
}
