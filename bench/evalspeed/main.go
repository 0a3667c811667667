// Command evalspeed times the eval forward pass a measurement runs over a val split, natgw's
// Go forward against onnxruntime on the same subnet, both on every core: the smallest, a
// middle and the largest subnet of a task's archive (stored BatchNorm statistics), random
// input, a few batch sizes. Prints one JSON line per subnet and batch: milliseconds per
// image (best of -runs), and Go / onnxruntime.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "evalspeed:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("task", "models/flowers", "task folder")
	batches := flag.String("batches", "16,100", "batch sizes")
	runs := flag.Int("runs", 5, "timed runs per case (the best is kept)")
	flag.Parse()
	t, err := task.Load(*dir)
	if err != nil {
		return err
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: runtime.GOMAXPROCS(0), InterOpThreads: 1, Spin: onnxrt.SpinDuringRun})
	if err != nil {
		return err
	}
	es := t.Archive.Snapshot()
	slices.SortFunc(es, func(a, b task.Entry) int { return int(a.MAdds - b.MAdds) })
	ctx := context.Background()
	enc := json.NewEncoder(os.Stdout)
	for _, e := range []task.Entry{es[0], es[len(es)/2], es[len(es)-1]} {
		sub, err := t.Subnet(ctx, e)
		if err != nil {
			return err
		}
		model, err := exporter.Export(sub, exporter.Options{})
		if err != nil {
			return err
		}
		sess, err := env.NewSession(model)
		if err != nil {
			return err
		}
		net := sub.Compile()
		r := e.Arch.R
		for _, f := range strings.Split(*batches, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return err
			}
			x := make([]float32, n*3*r*r)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			best := func(fn func() error) (float64, error) {
				b := 0.0
				for i := range *runs + 1 {
					t0 := time.Now()
					if err := fn(); err != nil {
						return 0, err
					}
					if d := time.Since(t0).Seconds(); i > 0 && (b == 0 || d < b) {
						b = d
					}
				}
				return b * 1000 / float64(n), nil
			}
			goMS, err := best(func() error { _, err := net.Forward(ctx, x, n, r, r); return err })
			if err != nil {
				return err
			}
			ortMS, err := best(func() error { _, _, err := sess.Run(ctx, x, []int64{int64(n), 3, int64(r), int64(r)}); return err })
			if err != nil {
				return err
			}
			enc.Encode(map[string]any{"task": t.Name, "madds": e.MAdds, "r": r, "batch": n,
				"go_ms_per_image": round3(goMS), "ort_ms_per_image": round3(ortMS), "go_over_ort": round3(goMS / ortMS)})
		}
		sess.Close()
	}
	return nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
