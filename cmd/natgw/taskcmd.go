package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

// cmdTaskCalibrate stores what a task folder needs so that serving never runs a forward
// pass for its archive and can measure new subnets: the archive's BatchNorm statistics
// (bnstats.safetensors), and with --data the val split's images (val/).
func cmdTaskCalibrate(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "task calibrate")
	dir := fs.String("task", "", "task folder to complete")
	data := fs.String("data", "", "image-folder data set whose val split the archive was measured on: copied into the task folder (optional when it has val/ already)")
	verify := fs.Bool("verify", false, "re-measure every archive subnet from its stored statistics on the val images and fail unless each reproduces its archived top-1 exactly")
	if err := parse(fs, args, "task"); err != nil {
		return helpOK(err)
	}
	t, err := loadRemakingStats(env, "task calibrate", *dir)
	if err != nil {
		return err
	}
	if *data != "" {
		if err := nat.CopyVal(t, *data); err != nil {
			return err
		}
		if t, err = task.Load(*dir); err != nil {
			return err
		}
	}
	computed, err := t.StoreStats(ctx, func(done, total int, e task.Entry) {
		fmt.Fprintf(env.stderr, "task calibrate: %d/%d %s (%.0fM MAdds, %d px)\n", done, total, e.Hash[:12], float64(e.MAdds)/1e6, e.Arch.R)
	})
	if err != nil {
		return err
	}
	out := map[string]any{"task": t.Name, "calibration": t.Stats.Calibration, "stored": t.Stats.Len(), "computed": computed}
	val, err := t.ValImages()
	switch {
	case err == nil:
		out["val_images"] = len(val)
	case errors.Is(err, task.ErrNoVal):
		out["val_images"] = 0
		fmt.Fprintln(env.stderr, "task calibrate: the task has no val/ images: a server can answer from its archive but measure nothing new (give --data)")
	default:
		return err
	}
	if *verify {
		if err != nil {
			return usageError{"task calibrate: --verify needs val images (--data)"}
		}
		if out["verified"], err = verifyStats(ctx, env, t, val); err != nil {
			return err
		}
	}
	return json.NewEncoder(env.stdout).Encode(out)
}

// loadRemakingStats loads a task folder for a command that stores its statistics again: a
// statistics file made for another calibration (other weights, images or crops) is
// worthless, and is removed rather than refused.
func loadRemakingStats(env *cli, cmd, dir string) (*task.Task, error) {
	t, err := task.Load(dir)
	if !errors.Is(err, task.ErrStaleBNStats) {
		return t, err
	}
	fmt.Fprintf(env.stderr, "%s: %v: removed, computed again\n", cmd, err)
	if err := os.Remove(filepath.Join(dir, task.BNStatsFile)); err != nil {
		return nil, err
	}
	return task.Load(dir)
}

// verifyStats measures every measured archive entry from its stored statistics on the
// task's val images and reports how many reproduce their archived top-1; any other
// outcome is an error.
func verifyStats(ctx context.Context, env *cli, t *task.Task, val []task.LabeledImage) (int, error) {
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: t.Supernet, Template: t.Manifest.Preprocess, Crops: t.CropByResolution,
		Calib: t.Calib, Val: val, MaxTensorBytes: 1,
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range t.Archive.Snapshot() {
		if e.Predicted {
			continue
		}
		sub, err := t.Subnet(ctx, e)
		if err != nil {
			return n, err
		}
		top1, err := ev.Top1(ctx, sub)
		if err != nil {
			return n, err
		}
		if top1 != e.Top1 {
			return n, fmt.Errorf("task calibrate: %s measures %.6f from its stored statistics, the archive says %.6f (another BLAS kernel than the archive's? see OPENBLAS_CORETYPE)", e.Hash[:12], top1, e.Top1)
		}
		n++
		fmt.Fprintf(env.stderr, "task calibrate: verified %s: top-1 %.4f\n", e.Hash[:12], top1)
	}
	return n, nil
}
