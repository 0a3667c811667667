package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// evalRow is one line of natgw evaluate's JSON output.
type evalRow struct {
	Hash     string  `json:"hash"`
	MAdds    int64   `json:"madds"`
	R        int     `json:"r"`
	ValTop1  float64 `json:"val_top1"`
	Top1     float64 `json:"top1"`
	Split    string  `json:"split"`
	Images   int     `json:"images"`
	Recorded bool    `json:"recorded"`
}

// cmdEvaluate is the final evaluation: it measures a task's front on a held-out split
// exactly as the gateway serves each subnet (the task's calibration images, then the CPU
// forward) and, for the test split, records the result as test_top1. Selection only
// ever reads val accuracies, so this number reports and never chooses.
func cmdEvaluate(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "evaluate")
	dir := fs.String("task", "", "task folder")
	data := fs.String("data", "", "image-folder data set holding the split")
	split := fs.String("split", "test", "split to measure on")
	all := fs.Bool("all", false, "measure every archive entry, not only the front")
	record := fs.Bool("record", true, "with --split test, write test_top1 into the task's archive.json")
	batch := fs.Int("batch", 100, "forward batch size")
	if err := parse(fs, args, "task", "data"); err != nil {
		return helpOK(err)
	}
	if *batch < 1 {
		return usageError{"evaluate: --batch ≥ 1"}
	}
	t, err := task.Load(*dir)
	if err != nil {
		return err
	}
	set, err := dataset.Open(*data, *split)
	if err != nil {
		return err
	}
	if !slices.Equal(set.Labels, t.Labels) {
		return fmt.Errorf("evaluate: %s/%s's classes are not the task's labels in order", *data, *split)
	}
	entries := task.Front(t.Archive.Snapshot())
	if *all {
		entries = t.Archive.Snapshot()
	}
	write := *record && *split == task.SplitTest
	for i, e := range entries {
		if e.Predicted {
			continue
		}
		t0 := time.Now()
		top1, n, err := measure(ctx, t, e.Arch, set, t.Preprocess(e.Arch.R), *batch)
		if err != nil {
			return fmt.Errorf("evaluate: %s/%s: %w", *data, *split, err)
		}
		row := evalRow{Hash: e.Hash, MAdds: e.MAdds, R: e.Arch.R, ValTop1: e.Top1, Top1: top1, Split: *split, Images: n}
		if write {
			row.Recorded = t.Archive.SetTestTop1(e.Hash, row.Top1)
		}
		line, _ := json.Marshal(row) // plain struct
		fmt.Fprintln(env.stdout, string(line))
		fmt.Fprintf(env.stderr, "evaluate: %d/%d %s at %.0fM MAdds, %d px: %s top-1 %.4f (val %.4f) in %s\n",
			i+1, len(entries), e.Hash[:12], float64(e.MAdds)/1e6, e.Arch.R, *split, row.Top1, e.Top1, time.Since(t0).Round(time.Millisecond))
	}
	if write {
		return t.Archive.Save(filepath.Join(*dir, task.ArchiveFile))
	}
	return nil
}

// measure is the top-1 accuracy of arch on set as the gateway serves it with the
// preprocessing p: extracted, BatchNorm rebuilt on the task's calibration images
// preprocessed by p, then the CPU forward. n is the number of images measured.
func measure(ctx context.Context, t *task.Task, arch supernet.Arch, set *dataset.Set, p preprocess.Spec, batch int) (top1 float64, n int, err error) {
	sub, err := t.Supernet.Extract(arch)
	if err != nil {
		return 0, 0, err
	}
	if err := t.RecalibrateWith(ctx, sub, p); err != nil {
		return 0, 0, err
	}
	net := sub.Compile()
	loader, err := dataset.NewLoader(dataset.Config{Set: set, Spec: p, Batch: batch})
	if err != nil {
		return 0, 0, err
	}
	correct := 0
	err = loader.Epoch(ctx, 0, func(b dataset.Batch) error {
		logits, err := net.Forward(ctx, b.X, b.N, arch.R, arch.R)
		if err != nil {
			return err
		}
		c := net.Classes()
		for j := range b.N {
			if scores.Argmax(logits[j*c:(j+1)*c]) == b.Labels[j] {
				correct++
			}
		}
		n += b.N
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if sk := loader.Skipped(); sk > 0 {
		return 0, 0, fmt.Errorf("%d images could not be read", sk)
	}
	if n == 0 {
		return 0, 0, errors.New("no images")
	}
	return float64(correct) / float64(n), n, nil
}
