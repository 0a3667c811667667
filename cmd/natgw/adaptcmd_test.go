package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/cpu"
	"github.com/natgw/natgw/internal/testtask"
	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// TestAdaptAndEvaluate runs the whole adaptation on a tiny generated task (one search,
// one fine-tuning round, the final search), checks the task folder it writes loads and
// serves the archive it measured, that a rerun continues instead of starting over, and
// that evaluate records test accuracy without touching the val accuracy selection uses.
func TestAdaptAndEvaluate(t *testing.T) {
	dir := t.TempDir()
	ckpt := testtask.Checkpoint(t, dir, 3, []int{24, 32})
	data := testtask.Data(t, dir, 4, "train", "val", "test")
	out := filepath.Join(dir, "models", "toy")
	sn0, err := supernet.Load(ckpt, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seed := sn0.Spec.Largest()
	seed.R = sn0.Spec.Resolutions[0] // not in the initial sample, which has the largest at its largest resolution
	args := []string{"adapt", "--seed-archs", "[" + string(seed.JSON()) + "]", "--supernet", ckpt, "--data", data, "--out", out, "--iterations", "1", "--epochs", "1",
		"--batch", "4", "--resolution", "32", "--evals", "5", "--final-evals", "6", "--initial", "4", "--per-iter", "2",
		"--carry", "2", "--calib", "6", "--workers", "1", "--latency=false", "--budgets", "1G", "--train-resolutions", "elite",
		"--top-sizes", "24,32"}
	stdout, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res nat.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("result %q: %v", stdout, err)
	}
	// Two rounds: the first searched and fine-tuned, the final one searched the served
	// weights after measuring the first's two best again.
	if len(res.Rounds) != 2 || res.Rounds[0].Steps == 0 || res.Rounds[1].Carried != 2 || res.Rounds[1].Steps != 0 ||
		res.Task != out || len(res.Front) == 0 || res.Rounds[1].Measured != len(res.Archive) {
		t.Fatalf("result: %+v", res)
	}
	events := progressEvents(t, stderr)
	var training []string
	for _, e := range events {
		if e.Stage == nat.StageFineTune && strings.HasPrefix(e.Message, "fine-tuning ") {
			training = append(training, e.Message)
		}
	}
	if len(training) != 1 || !regexp.MustCompile(`fine-tuning 1 epochs at (24|32)(×\d+)?(,(24|32)(×\d+)?)? px \(the top also at 24,32 px\)`).MatchString(training[0]) {
		t.Errorf("fine-tuning not at the elite's resolutions: %q", training)
	}
	last := events[len(events)-1]
	if last.Fraction != 1 || last.Stage != nat.StageWrite || !strings.Contains(last.Message, `wrote task "toy"`) {
		t.Errorf("last progress event %+v", last)
	}
	tk, err := task.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	entries := tk.Archive.Snapshot()
	if _, ok := tk.Archive.Lookup(seed.Hash()); !ok {
		t.Errorf("the seed arch %s is not in the final archive", seed.JSON())
	}
	a0, err := task.LoadArchive(filepath.Join(out+".work", "archive-0.json"), sn0.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := a0.Lookup(seed.Hash()); !ok || e.Source != "seed" {
		t.Errorf("first search: seed entry %+v (found %v), want source \"seed\"", e.Source, ok)
	}
	if len(entries) < 6 || len(tk.Calib) != 6 || tk.Name != "toy" || len(tk.Labels) != 3 {
		t.Fatalf("task: %d entries, %d calibration images, name %q, labels %v", len(entries), len(tk.Calib), tk.Name, tk.Labels)
	}
	if tk.Archive.SupernetVersion != tk.Supernet.Version() {
		t.Fatalf("archive measured with %q, task supernet is %q", tk.Archive.SupernetVersion, tk.Supernet.Version())
	}
	// The folder is complete for serving: val images and every subnet's statistics, which
	// reproduce each archived accuracy exactly.
	if val, err := tk.ValImages(); err != nil || len(val) != 12 || tk.Stats.Len() != len(entries) {
		t.Fatalf("task folder: %d val images (%v), %d stored statistics for %d subnets", len(val), err, tk.Stats.Len(), len(entries))
	}
	checkVerified(t, out, len(entries))
	w0, err := supernet.Load(filepath.Join(out+".work", "weights-0.safetensors"), supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w0.Meta[supernet.MetaVersion] == tk.Supernet.Version() {
		t.Fatal("fine-tuning did not change the weights' version")
	}
	w1, err := supernet.Load(filepath.Join(out+".work", "weights-1.safetensors"), supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w0.Meta["adapt_blas"]; ok || w1.Meta["adapt_blas"] != cpu.BLAS() {
		t.Fatalf("adapt_blas: start %q, fine-tuned %q; want none, then %q", w0.Meta["adapt_blas"], w1.Meta["adapt_blas"], cpu.BLAS())
	}
	before, _ := os.ReadFile(filepath.Join(out, task.ArchiveFile))
	_, stderr, err = runCLI(t, args...)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "fine-tuning 1 epochs") {
		t.Errorf("rerun trained again:\n%s", stderr)
	}
	after, _ := os.ReadFile(filepath.Join(out, task.ArchiveFile))
	if !bytes.Equal(before, after) {
		t.Error("rerun changed the finished archive")
	}

	stdout, stderr, err = runCLI(t, "evaluate", "--task", out, "--data", data, "--split", "test")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	rows := strings.Split(strings.TrimSpace(stdout), "\n")
	front := task.Front(entries)
	if len(rows) != len(front) {
		t.Fatalf("%d rows for a front of %d:\n%s", len(rows), len(front), stdout)
	}
	var r nat.EvalRow
	if err := json.Unmarshal([]byte(rows[0]), &r); err != nil || r.Images != 12 || !r.Recorded || r.Split != "test" {
		t.Fatalf("row %s (%v)", rows[0], err)
	}
	tk2, err := task.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tk2.Archive.Snapshot() {
		if e.Hash == r.Hash {
			if e.TestTop1 == nil || *e.TestTop1 != r.Top1 || e.Top1 != r.ValTop1 || e.Split != task.SplitVal {
				t.Fatalf("recorded entry %+v, row %+v", e, r)
			}
		}
	}
	checkTuneCrop(t, out, data)
	checkVerified(t, out, len(entries))
	if _, _, err := runCLI(t, "adapt", "--supernet", ckpt, "--data", data, "--out", filepath.Join(dir, "Bad Name")); err == nil {
		t.Fatal("invalid task name accepted")
	}
	if _, _, err := runCLI(t, "adapt", "--supernet", ckpt, "--data", data, "--out", filepath.Join(dir, "other"), "--train-resolutions", "best"); err == nil {
		t.Fatal("--train-resolutions best accepted")
	}
}

// TestTopFlagRefused: natgw adapt and natgw train refuse a --top that does not parse or does
// not fit the supernet's space before any work, and train refuses --top beside --fixed.
func TestTopFlagRefused(t *testing.T) {
	dir := t.TempDir()
	ckpt := testtask.Checkpoint(t, dir, 3, []int{24, 32})
	data := testtask.Data(t, dir, 1, "train", "val")
	sn, err := supernet.Load(ckpt, supernet.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := sn.Spec.Largest()
	bad := sn.Spec.Largest()
	bad.KS = append([]int(nil), bad.KS...)
	bad.KS[0] = 4
	out := filepath.Join(dir, "models", "toy")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"adapt, not JSON", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top", "{"}, "--top"},
		{"adapt, kernel 4", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top", string(bad.JSON())}, "--top"},
		{"adapt, top size 4", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top-sizes", "24,4"}, "--top-sizes"},
		{"adapt, top kd without top sizes", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top-kd"}, "--top-kd needs --top-sizes"},
		{"adapt, top kd weight without top kd", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top-sizes", "32", "--top-kd-weight", "2"}, "--top-kd-weight 2 needs --top-kd"},
		{"adapt, negative top kd weight", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top-sizes", "32", "--top-kd", "--top-kd-weight", "-1"}, "--top-kd-weight"},
		{"adapt, top sizes not numbers", []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--top-sizes", "24,,32"}, "--top-sizes"},
		{"train, beside --fixed", []string{"train", "--supernet", ckpt, "--data", data, "--out", filepath.Join(dir, "w.safetensors"),
			"--resolution", "32", "--batch", "2", "--epochs", "1", "--top", string(good.JSON()), "--fixed", string(good.JSON())}, "exclude each other"},
	} {
		_, stderr, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%s: err %v, stderr %q; want an error with %q", tc.name, err, stderr, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused adapt wrote its task folder")
	}
	top := sn.Spec.Smallest()
	stdout, stderr, err := runCLI(t, "train", "--supernet", ckpt, "--data", data, "--out", filepath.Join(dir, "top.safetensors"),
		"--resolution", "24", "--batch", "2", "--max-steps", "1", "--calib", "2", "--workers", "1", "--top", string(top.JSON()))
	if err != nil {
		t.Fatalf("train --top: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, `"top":`) {
		t.Errorf("train --top: its record lacks the top subnet: %s", stdout)
	}
}

// TestAdaptAverage: with --average the task serves, and the final search measures, the mean
// of the rounds' end weights (rounded to float16), and out-of-range counts are refused
// before any work.
func TestAdaptAverage(t *testing.T) {
	dir := t.TempDir()
	ckpt := testtask.Checkpoint(t, dir, 3, []int{24, 32})
	data := testtask.Data(t, dir, 4, "train", "val")
	out := filepath.Join(dir, "models", "toy")
	base := []string{"adapt", "--supernet", ckpt, "--data", data, "--out", out, "--iterations", "1", "--epochs", "1",
		"--batch", "4", "--resolution", "32", "--evals", "4", "--final-evals", "4", "--initial", "4", "--per-iter", "2",
		"--carry", "1", "--calib", "6", "--workers", "1", "--latency=false", "--budgets", ""}
	for _, n := range []string{"-1", "3"} {
		_, stderr, err := runCLI(t, append(base, "--average", n)...)
		if err == nil || !strings.Contains(err.Error()+stderr, "--average "+n) {
			t.Errorf("--average %s with one iteration: err %v, stderr %q", n, err, stderr)
		}
	}
	if _, err := os.Stat(out + ".work"); err == nil {
		t.Error("a refused adapt wrote its work folder")
	}
	_, stderr, err := runCLI(t, append(base, "--average", "2")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "final weights: the mean of rounds 0 to 1's end weights") {
		t.Errorf("progress does not name the average:\n%s", stderr)
	}
	load := func(name string) *supernet.Supernet {
		t.Helper()
		sn, err := supernet.Load(filepath.Join(out+".work", name), supernet.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sn
	}
	w0, w1, avg := load("weights-0.safetensors"), load("weights-1.safetensors"), load("weights-1-avg2.safetensors")
	if avg.Meta["averaged_rounds"] != "0-1" {
		t.Errorf("averaged weights' meta %v", avg.Meta)
	}
	moved := false
	for _, p := range avg.Params() {
		a, b := w0.Tensor(p.Name), w1.Tensor(p.Name)
		for j, v := range p.Data {
			if want := (a[j] + b[j]) / 2; math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("%s[%d] = %g, want the mean %g", p.Name, j, v, want)
			}
			moved = moved || a[j] != b[j]
		}
	}
	if !moved {
		t.Fatal("fine-tuning changed no weight: the average proves nothing")
	}
	tk, err := task.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	half := load("weights-1-avg2-half.safetensors")
	if v := tk.Supernet.Version(); v != half.Version() || tk.Archive.SupernetVersion != v {
		t.Errorf("task serves %s measured on %s, want the averaged weights %s", v, tk.Archive.SupernetVersion, half.Version())
	}
}

// checkTuneCrop runs natgw tune-crop --write on an adapted task: the rows at crop 1
// reproduce the search's val accuracies, the task takes the crops it printed, its entries
// the val accuracies at those crops (their test accuracies dropped), natgw evaluate then
// measures exactly those, and a rerun measures nothing again.
func checkTuneCrop(t *testing.T, out, data string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "crops.jsonl")
	args := []string{"tune-crop", "--task", out, "--data", data, "--crops", "0.75,1", "--log", log, "--write"}
	stdout, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	chosen := map[int]float64{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var c struct {
			R    int     `json:"r"`
			Crop float64 `json:"crop"`
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("tune-crop line %q: %v", l, err)
		}
		chosen[c.R] = c.Crop
	}
	tk, err := task.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	rows := cropLog(t, log, tk.Supernet.Version())
	entries := tk.Archive.Snapshot()
	if len(rows) != 2*len(entries) {
		t.Fatalf("%d rows for %d entries at 2 crops", len(rows), len(entries))
	}
	for _, e := range entries {
		at1, atChosen := rows[fmt.Sprint(e.Hash, "@", 1.0)], rows[fmt.Sprint(e.Hash, "@", chosen[e.Arch.R])]
		if at1.Top1 != at1.Archived {
			t.Errorf("%s at crop 1: %v, the search measured %v", e.Hash[:12], at1.Top1, at1.Archived)
		}
		if e.Top1 != atChosen.Top1 || e.TestTop1 != nil {
			t.Errorf("%s: top1 %v test %v, want %v at crop %v and no test accuracy", e.Hash[:12], e.Top1, e.TestTop1, atChosen.Top1, chosen[e.Arch.R])
		}
	}
	if !maps.Equal(tk.CropByResolution, chosen) {
		t.Fatalf("task.json crops %v, tune-crop printed %v", tk.CropByResolution, chosen)
	}
	ev, stderr, err := runCLI(t, "evaluate", "--task", out, "--data", data, "--split", "val")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(ev), "\n") {
		var r nat.EvalRow
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Top1 != r.ValTop1 {
			t.Errorf("served preprocessing measures %s, not the archive's val accuracy (%v)", l, err)
		}
	}
	again, stderr, err := runCLI(t, args...)
	if err != nil || again != stdout || strings.Contains(stderr, "ETA") {
		t.Fatalf("rerun: %v, output %q (first %q), measured again:\n%s", err, again, stdout, stderr)
	}
}

// checkVerified runs natgw task calibrate --verify on a task folder: every archived
// accuracy must be reproduced from the stored statistics.
func checkVerified(t *testing.T, dir string, n int) {
	t.Helper()
	stdout, stderr, err := runCLI(t, "task", "calibrate", "--task", dir, "--verify")
	if err != nil {
		t.Fatalf("task calibrate --verify: %v\n%s", err, stderr)
	}
	var out struct {
		Stored, Computed, Verified int
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Verified != n || out.Stored != n || out.Computed != 0 {
		t.Fatalf("task calibrate --verify: %s (%v), want %d verified, none computed", stdout, err, n)
	}
}

// progressEvents parses the JSON progress lines a command wrote (stderr is not a terminal
// in tests).
func progressEvents(t *testing.T, stderr string) []nat.Event {
	t.Helper()
	var out []nat.Event
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var e nat.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("progress line %q: %v", line, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		t.Fatal("no progress")
	}
	return out
}

// cropLog reads a tune-crop log (JSON lines of nat.CropRow) by "hash@crop", checking every
// row was measured on the given supernet version.
func cropLog(t *testing.T, path, version string) map[string]nat.CropRow {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]nat.CropRow{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r nat.CropRow
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Supernet != version {
			t.Fatalf("log row %q (%v), want one of supernet %s", l, err, version)
		}
		rows[fmt.Sprint(r.Hash, "@", r.Crop)] = r
	}
	return rows
}
