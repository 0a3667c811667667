// Command archivehv prints, for each task folder given, the hypervolume of its archive's
// measured val entries (top-1 error against MAdds normalised over the supernet's smallest to
// largest subnet, as the search reports it) and its val front: the rule by which a re-adapted
// task replaces the shipped one is decided on val alone.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: archivehv TASK_DIR...")
		os.Exit(2)
	}
	for _, dir := range os.Args[1:] {
		if err := report(dir); err != nil {
			fmt.Fprintln(os.Stderr, "archivehv:", err)
			os.Exit(1)
		}
	}
}

type point struct {
	MAdds int64   `json:"madds"`
	R     int     `json:"r"`
	Top1  float64 `json:"val_top1"`
}

func report(dir string) error {
	t, err := task.Load(dir)
	if err != nil {
		return err
	}
	spec := t.Supernet.Spec
	lo, err := specializer.CountArch(spec, spec.Smallest())
	if err != nil {
		return err
	}
	hi, err := specializer.CountArch(spec, spec.Largest())
	if err != nil {
		return err
	}
	var val []task.Entry
	for _, e := range t.Archive.Snapshot() {
		if !e.Predicted && e.Split == task.SplitVal {
			val = append(val, e)
		}
	}
	var front []point
	for _, e := range task.Front(val) {
		front = append(front, point{e.MAdds, e.Arch.R, e.Top1})
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"task": dir, "measured": len(val), "madds_range": []int64{lo.MAdds, hi.MAdds},
		"hv_val": specializer.Hypervolume(val, lo.MAdds, hi.MAdds), "front": front,
	})
}
