package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testtask"
	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/task"
)

// tinyRecipe is the standard recipe cut to seconds: a warm-up of one epoch, no adaptation
// round, four subnets measured, two crops.
func tinyRecipe(t *testing.T, dir string) string {
	t.Helper()
	r := nat.Presets["standard"]
	r.ValFraction, r.MinPerClass, r.ImportImages, r.ImportResolution = 0.25, 4, 12, 96
	r.WarmUp.Resolution, r.WarmUp.Epochs, r.WarmUp.Batch, r.WarmUp.Subnets, r.WarmUp.CalibImages = 96, 1, 4, 0, 6
	r.WarmUp.Top = nat.Top{}
	r.Adapt = nat.Adapt{Resolution: 96, Iterations: 0, Epochs: 1, LR: 0.001, Evals: 4, FinalEvals: 4, CalibImages: 6, SeedSizes: []int{96}}
	r.Crops = []float64{1, 0.875}
	path := filepath.Join(dir, "tiny.json")
	if err := nat.WriteRecipe(path, r); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTaskCreate runs natgw task create end to end on the real pretrained network and a
// tiny data set without a val split: the task folder it writes is complete (val sliced and
// recorded, statistics stored, crops chosen, the front evaluated on test), and a rerun finds
// every stage done.
func TestTaskCreate(t *testing.T) {
	pretrained := filepath.Join(testutil.Shared(t, "data/pretrained-mobilenet-tflite"), "mobilenet_v2_1.0_224_quant.tflite")
	dir := t.TempDir()
	data := testtask.Data(t, dir, 6, "train", "test")
	out := filepath.Join(dir, "models", "toy")
	args := []string{"task", "create", "--name", "toy", "--data", data, "--recipe", tinyRecipe(t, dir), "--out", out,
		"--pretrained", pretrained, "--workers", "1"}
	stdout, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res nat.CreateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("result %q: %v", stdout, err)
	}
	if res.Data.ValFromTrain == nil || res.Data.Train != 12 || res.Data.Val != 6 || res.Data.Test != 18 || len(res.Crops) == 0 || len(res.Test) == 0 {
		t.Fatalf("result: %+v", res)
	}
	tk, err := task.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if tk.ValFrom == nil || len(tk.CropByResolution) == 0 || tk.Stats.Len() != tk.Archive.Len() {
		t.Fatalf("task: val from %v, crops %v, %d statistics for %d subnets", tk.ValFrom, tk.CropByResolution, tk.Stats.Len(), tk.Archive.Len())
	}
	for _, e := range task.Front(tk.Archive.Snapshot()) {
		if e.TestTop1 == nil {
			t.Fatalf("front member %s has no test accuracy", e.Hash[:12])
		}
	}
	events := progressEvents(t, stderr)
	if last := events[len(events)-1]; last.Stage != "done" || last.Fraction != 1 {
		t.Fatalf("last progress event %+v", last)
	}
	again, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr)
	}
	var res2 nat.CreateResult
	if err := json.Unmarshal([]byte(again), &res2); err != nil {
		t.Fatal(err)
	}
	for _, s := range res2.Stages[1:] {
		if !s.Resumed {
			t.Errorf("rerun: stage %s ran again", s.Stage)
		}
	}
	if strings.Count(stderr, `"stage":"warm-up"`) > 2 {
		t.Error("rerun: the warm-up trained again")
	}
	if _, err := os.Stat(filepath.Join(out+".work", "data", "val")); err != nil {
		t.Errorf("no val view in the work folder: %v", err)
	}
}
