// Command archivehv prints, for each task folder given, the hypervolume of its archive's
// measured val entries (top-1 error against MAdds normalised over the supernet's smallest to
// largest subnet, as the search reports it) and its val front: the rule by which a re-adapted
// task replaces the shipped one is decided on val alone. With -best it prints only the folder
// whose val hypervolume is highest (the first of equals), for scripts that ship the best of
// several runs.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

func main() {
	best := flag.Bool("best", false, "print only the task folder with the highest val hypervolume")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: archivehv [-best] TASK_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	var top *result
	for _, dir := range flag.Args() {
		r, err := measure(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "archivehv:", err)
			os.Exit(1)
		}
		if *best {
			fmt.Fprintf(os.Stderr, "archivehv: %s: val hypervolume %.4f (%d measured)\n", dir, r.HV, r.Measured)
			if top == nil || r.HV > top.HV {
				top = &r
			}
			continue
		}
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "archivehv:", err)
			os.Exit(1)
		}
	}
	if top != nil {
		fmt.Println(top.Task)
	}
}

type point struct {
	MAdds int64   `json:"madds"`
	R     int     `json:"r"`
	Top1  float64 `json:"val_top1"`
}

type result struct {
	Front      []point  `json:"front"`
	HV         float64  `json:"hv_val"`
	MAddsRange [2]int64 `json:"madds_range"`
	Measured   int      `json:"measured"`
	Task       string   `json:"task"`
}

func measure(dir string) (result, error) {
	t, err := task.Load(dir)
	if err != nil {
		return result{}, err
	}
	spec := t.Supernet.Spec
	lo, err := specializer.CountArch(spec, spec.Smallest())
	if err != nil {
		return result{}, err
	}
	hi, err := specializer.CountArch(spec, spec.Largest())
	if err != nil {
		return result{}, err
	}
	var val []task.Entry
	for _, e := range t.Archive.Snapshot() {
		if !e.Predicted && e.Split == task.SplitVal {
			val = append(val, e)
		}
	}
	r := result{Task: dir, Measured: len(val), MAddsRange: [2]int64{lo.MAdds, hi.MAdds},
		HV: specializer.Hypervolume(val, lo.MAdds, hi.MAdds)}
	for _, e := range task.Front(val) {
		r.Front = append(r.Front, point{e.MAdds, e.Arch.R, e.Top1})
	}
	return r, nil
}
