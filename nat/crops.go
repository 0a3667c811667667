package nat

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

	"time"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/task"
)

// CropConfig chooses a task's eval centre crop per input size on val (natgw tune-crop).
type CropConfig struct {
	Task  string    // task folder
	Data  string    // image-folder data set with a val split (no other split is read)
	Crops []float64 // candidate crop fractions; default 1, 0.9375, 0.875, 0.75
	// Log keeps every measurement as a JSON line; rows already there are reused, so that
	// a killed run resumes. Default <task>/tune-crop.jsonl.
	Log   string
	Write bool // record the choice, the re-measured val accuracies and the statistics
	Batch int  // forward batch; default 100
}

// DefaultCrops are the crop fractions tried by default.
var DefaultCrops = []float64{1, 0.9375, 0.875, 0.75}

// CropRow is one line of natgw tune-crop's output: one archive entry measured on val at
// one candidate crop.
type CropRow struct {
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

// CropChoice is a resolution's chosen crop and the mean val top-1 of every candidate.
type CropChoice struct {
	R       int                 `json:"r"`
	Crop    float64             `json:"crop"`
	Entries int                 `json:"entries"`
	Means   map[float64]float64 `json:"-"`
}

// ChooseCrops chooses the eval centre crop per resolution on val: every measured archive
// entry is measured at every candidate crop as it is served (BatchNorm rebuilt on the
// calibration images with the same crop), and each resolution takes the crop with the
// best mean top-1 over its entries. With Write it records the choice in task.json, each
// entry's val top-1 at its resolution's crop in archive.json, and the statistics of the
// new crops, and drops the test accuracies, which were measured with the old preprocessing
// (Evaluate measures them again). Only the val split is read. each, if set, gets every
// measurement as it is made, with the count done, the count in all and an ETA.
func ChooseCrops(ctx context.Context, c CropConfig, each func(r CropRow, done, total int, eta time.Duration)) ([]CropChoice, error) {
	if c.Crops == nil {
		c.Crops = DefaultCrops
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Batch < 1 {
		return nil, &ConfigError{fmt.Errorf("Batch %d: want ≥ 1", c.Batch)}
	}
	crops, err := checkCrops(c.Crops)
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("Crops %v: %w", c.Crops, err)}
	}
	if c.Log == "" {
		c.Log = filepath.Join(c.Task, "tune-crop.jsonl")
	}
	t, err := loadRemakingStats(c.Task)
	if err != nil {
		return nil, err
	}
	set, err := dataset.Open(c.Data, task.SplitVal)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(set.Labels, t.Labels) {
		return nil, fmt.Errorf("%s/val's classes are not the task's labels in order", c.Data)
	}
	version := t.Supernet.Version()
	done, err := readCropLog(c.Log, version)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(c.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var entries []task.Entry
	for _, e := range t.Archive.Snapshot() {
		if !e.Predicted {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return nil, errors.New("the archive has no measured entries")
	}
	var rows []CropRow
	total, todo, start := len(entries)*len(crops), 0, time.Now()
	for _, e := range entries {
		for _, cr := range crops {
			if _, ok := done[cropKey(e.Hash, cr)]; !ok {
				todo++
			}
		}
	}
	measured := 0
	for _, e := range entries {
		for _, cr := range crops {
			row, ok := done[cropKey(e.Hash, cr)]
			if !ok {
				p := t.Preprocess(e.Arch.R)
				p.CropFraction = cr
				sub, err := t.Supernet.Extract(e.Arch)
				if err != nil {
					return nil, err
				}
				if err := t.RecalibrateWith(ctx, sub, p); err != nil {
					return nil, err
				}
				top1, _, err := Measure(ctx, sub, set, p, c.Batch)
				if err != nil {
					return nil, fmt.Errorf("%s/val: %w", c.Data, err)
				}
				row = CropRow{Hash: e.Hash, MAdds: e.MAdds, R: e.Arch.R, Crop: cr, Top1: top1, Archived: e.Top1, Supernet: version}
				line, _ := json.Marshal(row) // plain struct
				if _, err := fmt.Fprintln(f, string(line)); err != nil {
					return nil, err
				}
				measured++
				if each != nil {
					el := time.Since(start)
					each(row, total-todo+measured, total, time.Duration(float64(el)/float64(measured)*float64(todo-measured)))
				}
			}
			rows = append(rows, row)
		}
	}
	choices := chooseCrops(rows, crops)
	if !c.Write {
		return choices, nil
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
	// Write, which measures nothing again (every row is in the log).
	if err := t.Archive.Save(filepath.Join(c.Task, task.ArchiveFile)); err != nil {
		return nil, err
	}
	if err := task.SaveManifest(c.Task, m); err != nil {
		return nil, err
	}
	// The stored statistics were rebuilt with the old crops: made again with the new ones.
	if t, err = loadRemakingStats(c.Task); err != nil {
		return nil, err
	}
	if _, err := t.StoreStats(ctx, nil); err != nil {
		return nil, err
	}
	return choices, nil
}

// loadRemakingStats loads a task folder whose stored statistics are about to be made
// again: a statistics file made for another calibration (other weights, images or crops)
// is worthless, and is removed rather than refused.
func loadRemakingStats(dir string) (*task.Task, error) {
	t, err := task.Load(dir)
	if !errors.Is(err, task.ErrStaleBNStats) {
		return t, err
	}
	if err := os.Remove(filepath.Join(dir, task.BNStatsFile)); err != nil {
		return nil, err
	}
	return task.Load(dir)
}

// checkCrops returns crop fractions largest first (ties then go to the larger crop: less
// of the image thrown away), refusing repeats and fractions outside
// [preprocess.MinCropFraction, 1].
func checkCrops(in []float64) ([]float64, error) {
	var out []float64
	for _, c := range in {
		if !(c >= preprocess.MinCropFraction && c <= 1) {
			return nil, fmt.Errorf("%g not in [%g, 1]", c, preprocess.MinCropFraction)
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("%g given twice", c)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no crop")
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// chooseCrops picks, per resolution, the crop of crops (largest first) with the highest
// mean top-1 over the rows at that resolution; the first of equal means wins.
func chooseCrops(rows []CropRow, crops []float64) []CropChoice {
	sum := map[int]map[float64]float64{}
	count := map[int]map[float64]int{}
	for _, r := range rows {
		if sum[r.R] == nil {
			sum[r.R], count[r.R] = map[float64]float64{}, map[float64]int{}
		}
		sum[r.R][r.Crop] += r.Top1
		count[r.R][r.Crop]++
	}
	var out []CropChoice
	for _, r := range slices.Sorted(maps.Keys(sum)) {
		ch := CropChoice{R: r, Means: map[float64]float64{}, Entries: count[r][crops[0]]}
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
func readCropLog(path, version string) (map[string]CropRow, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]CropRow{}, nil
	}
	if err != nil {
		return nil, err
	}
	done := map[string]CropRow{}
	good := 0 // bytes of whole, valid lines
	for i, rest := 1, data; len(rest) > 0; i++ {
		line, after, whole := bytes.Cut(rest, []byte("\n"))
		var r CropRow
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
