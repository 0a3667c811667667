// Command archivehv prints, for each task folder given, the hypervolume of its archive's
// measured val entries (top-1 error against MAdds normalised over the supernet's smallest to
// largest subnet, as the search reports it) and its val front: the rule by which a re-adapted
// task replaces the shipped one is decided on val alone. With -best it prints only the folder
// whose val hypervolume is highest (the first of equals), for scripts that ship the best of
// several runs. With -against COST:TOP1,... it also prints, at each of those baseline
// points, the margin of the best val front member of no more MAdds over the baseline's val
// top-1 (in points), and -best then ranks by the smallest margin (ties within 0.05 points
// by their sum): the done-when's dominance test, asked of val.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

func main() {
	best := flag.Bool("best", false, "print only the task folder with the highest val hypervolume (with -against: the largest smallest margin)")
	against := flag.String("against", "", "baseline points COST:TOP1,... (e.g. 55.1M:74.0): the margin of the best val front member of no more MAdds over each, in points")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: archivehv [-best] [-against COST:TOP1,...] TASK_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	base, err := parseBaseline(*against)
	if err != nil {
		fmt.Fprintln(os.Stderr, "archivehv: -against:", err)
		os.Exit(2)
	}
	var top *result
	for _, dir := range flag.Args() {
		r, err := measure(dir, base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "archivehv:", err)
			os.Exit(1)
		}
		if *best {
			fmt.Fprintf(os.Stderr, "archivehv: %s: val hypervolume %.4f (%d measured)", dir, r.HV, r.Measured)
			if len(base) > 0 {
				ms := make([]string, len(r.Margins))
				for i, m := range r.Margins {
					ms[i] = m.String()
				}
				fmt.Fprintf(os.Stderr, ", margins %s; smallest %+.2f, sum %+.2f", strings.Join(ms, "; "), *r.MinMargin, *r.SumMargin)
			}
			fmt.Fprintln(os.Stderr)
			if top == nil || better(r, *top, len(base) > 0) {
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
	Margins    []margin `json:"margins,omitempty"`
	MinMargin  *float64 `json:"min_margin,omitempty"` // points
	SumMargin  *float64 `json:"sum_margin,omitempty"`
}

// baseline is a point a task's front must dominate: its MAdds and val top-1 in percent.
type baseline struct {
	MAdds int64
	Top1  float64
}

type margin struct {
	MAdds  int64   `json:"baseline_madds"`
	Top1   float64 `json:"baseline_top1"`
	Best   *point  `json:"best,omitempty"` // the best val front member of no more MAdds; nil: none
	Points float64 `json:"margin"`         // best's val top-1 minus the baseline's, in points (no member: 0 % minus it)
}

func (m margin) String() string {
	if m.Best == nil {
		return fmt.Sprintf("%.1fM: none", float64(m.MAdds)/1e6)
	}
	return fmt.Sprintf("%.1fM: %.2f%% at %.1fM %+.2f", float64(m.MAdds)/1e6, 100*m.Best.Top1, float64(m.Best.MAdds)/1e6, m.Points)
}

// parseBaseline reads COST:TOP1,... with COST as the gateway reads MAdds (55.1M) and TOP1 in
// percent.
func parseBaseline(s string) ([]baseline, error) {
	if s == "" {
		return nil, nil
	}
	var out []baseline
	for _, f := range strings.Split(s, ",") {
		c, a, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			return nil, fmt.Errorf("%q: want COST:TOP1", f)
		}
		m, err := specializer.ParseCount(c)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		v, err := strconv.ParseFloat(a, 64)
		if err != nil || !(v >= 0 && v <= 100) {
			return nil, fmt.Errorf("%q: top-1 %q is not a percentage", f, a)
		}
		out = append(out, baseline{m, v})
	}
	return out, nil
}

// better ranks a over b: by val hypervolume, or with baselines by the smallest margin, ties
// within 0.05 points going to the larger sum.
func better(a, b result, margins bool) bool {
	if !margins {
		return a.HV > b.HV
	}
	if math.Abs(*a.MinMargin-*b.MinMargin) <= 0.05 {
		return *a.SumMargin > *b.SumMargin
	}
	return *a.MinMargin > *b.MinMargin
}

func measure(dir string, base []baseline) (result, error) {
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
	if len(base) > 0 {
		r.Margins = margins(r.Front, base)
		lo, sum := math.Inf(1), 0.0
		for _, m := range r.Margins {
			lo, sum = math.Min(lo, m.Points), sum+m.Points
		}
		r.MinMargin, r.SumMargin = &lo, &sum
	}
	return r, nil
}

// margins measures front against each baseline point: its best member of no more MAdds.
func margins(front []point, base []baseline) []margin {
	var out []margin
	for _, b := range base {
		m := margin{MAdds: b.MAdds, Top1: b.Top1, Points: -b.Top1}
		for i, p := range front {
			if p.MAdds <= b.MAdds && (m.Best == nil || p.Top1 > m.Best.Top1) {
				m.Best = &front[i]
			}
		}
		if m.Best != nil {
			m.Points = 100*m.Best.Top1 - b.Top1
		}
		out = append(out, m)
	}
	return out
}
