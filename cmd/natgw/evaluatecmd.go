package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/natgw/natgw/nat"
)

// cmdEvaluate is the final evaluation (nat.Evaluate): it measures a task's front on a
// held-out split exactly as the gateway serves each subnet and, for the test split,
// records the result as test_top1. One JSON line per subnet goes to stdout.
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
	enc := json.NewEncoder(env.stdout)
	n := 0
	_, err := nat.Evaluate(ctx, nat.EvaluateConfig{Task: *dir, Data: *data, Split: *split, All: *all, Record: *record, Batch: *batch},
		func(r nat.EvalRow, took time.Duration) {
			n++
			enc.Encode(r)
			fmt.Fprintf(env.stderr, "evaluate: %d %s at %.0fM MAdds, %d px: %s top-1 %.4f (val %.4f) in %s\n",
				n, r.Hash[:12], float64(r.MAdds)/1e6, r.R, r.Split, r.Top1, r.ValTop1, took.Round(time.Millisecond))
		})
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	return nil
}
