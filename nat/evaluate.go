package nat

import (
	"context"
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

// EvaluateConfig is a task's final evaluation (natgw evaluate).
type EvaluateConfig struct {
	Task  string // task folder
	Data  string // image-folder data set holding the split
	Split string // default test
	All   bool   // every archive entry, not only the front
	// Record writes test_top1 into the archive (test split only).
	Record bool
	Batch  int // forward batch; default 100
}

// EvalRow is one subnet measured by Evaluate.
type EvalRow struct {
	Hash     string  `json:"hash"`
	MAdds    int64   `json:"madds"`
	R        int     `json:"r"`
	ValTop1  float64 `json:"val_top1"`
	Top1     float64 `json:"top1"`
	Split    string  `json:"split"`
	Images   int     `json:"images"`
	Recorded bool    `json:"recorded"`
}

// Evaluate measures a task's front (or its whole archive) on a held-out split exactly as
// a gateway serves each subnet (its stored BatchNorm statistics, the task's preprocessing)
// and, for the test split, records the result as test_top1. Selection only ever reads val
// accuracies, so this number reports and never chooses. each, if set, gets every row as
// it is measured.
func Evaluate(ctx context.Context, c EvaluateConfig, each func(EvalRow, time.Duration)) ([]EvalRow, error) {
	if c.Split == "" {
		c.Split = task.SplitTest
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Batch < 1 {
		return nil, &ConfigError{fmt.Errorf("Batch %d: want ≥ 1", c.Batch)}
	}
	t, err := task.Load(c.Task)
	if err != nil {
		return nil, err
	}
	set, err := dataset.Open(c.Data, c.Split)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(set.Labels, t.Labels) {
		return nil, fmt.Errorf("%s/%s's classes are not the task's labels in order", c.Data, c.Split)
	}
	entries := task.Front(t.Archive.Snapshot())
	if c.All {
		entries = t.Archive.Snapshot()
	}
	write := c.Record && c.Split == task.SplitTest
	var rows []EvalRow
	for _, e := range entries {
		if e.Predicted {
			continue
		}
		t0 := time.Now()
		sub, err := t.Subnet(ctx, e)
		if err != nil {
			return rows, err
		}
		top1, n, err := Measure(ctx, sub, set, t.Preprocess(e.Arch.R), c.Batch)
		if err != nil {
			return rows, fmt.Errorf("%s/%s: %w", c.Data, c.Split, err)
		}
		row := EvalRow{Hash: e.Hash, MAdds: e.MAdds, R: e.Arch.R, ValTop1: e.Top1, Top1: top1, Split: c.Split, Images: n}
		if write {
			row.Recorded = t.Archive.SetTestTop1(e.Hash, row.Top1)
		}
		rows = append(rows, row)
		if each != nil {
			each(row, time.Since(t0))
		}
	}
	if write {
		return rows, t.Archive.Save(filepath.Join(c.Task, task.ArchiveFile))
	}
	return rows, nil
}

// Measure is the top-1 accuracy of a subnet, BatchNorm statistics set, on a data set
// split preprocessed by p: the CPU forward over every image. n is the number measured.
func Measure(ctx context.Context, sub *supernet.Subnet, set *dataset.Set, p preprocess.Spec, batch int) (top1 float64, n int, err error) {
	net := sub.Compile()
	loader, err := dataset.NewLoader(dataset.Config{Set: set, Spec: p, Batch: batch})
	if err != nil {
		return 0, 0, err
	}
	r := sub.Resolution
	correct := 0
	err = loader.Epoch(ctx, 0, func(b dataset.Batch) error {
		logits, err := net.Forward(ctx, b.X, b.N, r, r)
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
