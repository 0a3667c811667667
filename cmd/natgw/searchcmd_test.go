package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// searchFixture writes a small random supernet and a 2-class image folder (train, val, test).
func searchFixture(t *testing.T) (ckpt, data string) {
	t.Helper()
	spec := &supernet.Spec{
		Name: "cli_tiny", Classes: 2, Resolutions: []int{32, 48}, Kernels: []int{3, 5}, Expands: []int{3, 6},
		Divisor: 8, SEReduction: 4, Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:  supernet.Conv{Out: 8, Kernel: 3, Stride: 2, Act: supernet.ActReLU},
		First: supernet.FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{
			{Width: 16, Stride: 2, Act: supernet.ActReLU, Depths: []int{1, 2}},
			{Width: 24, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2}},
		},
		FinalExpand: &supernet.Pointwise{Out: 32, BN: true, Act: supernet.ActHSwish},
	}
	sn, err := supernet.Random(spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ckpt = filepath.Join(dir, "sn.safetensors")
	if err := sn.Save(ckpt, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	data = filepath.Join(dir, "data")
	for _, split := range []string{"train", "val", "test"} {
		for c, col := range []color.RGBA{{200, 30, 30, 255}, {30, 30, 200, 255}} {
			d := filepath.Join(data, split, fmt.Sprintf("c%d", c))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				img := image.NewRGBA(image.Rect(0, 0, 40, 40))
				for p := range 40 * 40 {
					img.Set(p%40, p/40, col)
					if (p+i)%7 == 0 {
						img.Set(p%40, p/40, color.RGBA{128, 128, 128, 255})
					}
				}
				testutil.WritePNG(t, filepath.Join(d, fmt.Sprintf("%d.png", i)), img)
			}
		}
	}
	return ckpt, data
}

func TestSearchAndFrontCommands(t *testing.T) {
	ckpt, data := searchFixture(t)
	out := filepath.Join(t.TempDir(), "archive.json")
	args := []string{"search", "--task", "shapes", "--supernet", ckpt, "--data", data, "--out", out,
		"--evals", "8", "--initial", "6", "--per-iter", "2", "--calib", "4"}
	if _, stderr, err := runCLI(t, args...); err != nil {
		t.Fatalf("search: %v\n%s", err, stderr)
	}
	// Resume with a larger budget: continues from 8.
	args[len(args)-7] = "10"
	_, stderr, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("resumed search: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "resuming from 8 entries") {
		t.Fatalf("no resume message:\n%s", stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ Entries []task.Entry }
	if err := json.Unmarshal(raw, &a); err != nil || len(a.Entries) != 10 {
		t.Fatalf("archive: %d entries, %v", len(a.Entries), err)
	}

	png := filepath.Join(t.TempDir(), "front.png")
	stdout, stderr, err := runCLI(t, "front", "--archive", out, "--plot", png, "--budgets", fmt.Sprint(a.Entries[0].MAdds))
	if err != nil {
		t.Fatalf("front: %v\n%s", err, stderr)
	}
	var front []task.Entry
	if err := json.Unmarshal([]byte(stdout), &front); err != nil || len(front) == 0 {
		t.Fatalf("front output %q: %v", stdout, err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	for _, bad := range [][]string{
		{"front"},
		{"front", "--archive", out, "--models", "x"},
		{"search", "--task", "shapes", "--supernet", ckpt, "--data", data, "--out", out, "--evals", "1"},
		{"search", "--task", "shapes", "--supernet", ckpt, "--data", data, "--out", out, "--evals", "4", "--seed-archs", "{}"},
	} {
		if _, _, err := runCLI(t, bad...); exitCode(err) != 2 {
			t.Errorf("%v: err %v, want a usage error", bad, err)
		}
	}
}

func TestSearchSeedArchs(t *testing.T) {
	ckpt, data := searchFixture(t)
	out := filepath.Join(t.TempDir(), "archive.json")
	seed := `{"ks":[5,5,3,5],"e":[3,6,3,3],"d":[2,2],"r":48}`
	if _, stderr, err := runCLI(t, "search", "--task", "shapes", "--supernet", ckpt, "--data", data, "--out", out,
		"--evals", "6", "--initial", "4", "--per-iter", "2", "--calib", "4", "--seed-archs", "["+seed+"]"); err != nil {
		t.Fatalf("search: %v\n%s", err, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var a struct{ Entries []task.Entry }
	if err := json.Unmarshal(raw, &a); err != nil || len(a.Entries) != 6 {
		t.Fatalf("archive: %d entries, %v", len(a.Entries), err)
	}
	if e := a.Entries[0]; e.Source != "seed" || string(e.Arch.JSON()) != seed {
		t.Errorf("first entry %s from %q, want the seed %s", e.Arch.JSON(), e.Source, seed)
	}
	// A seed outside the space fails the search with a message naming it.
	_, _, err = runCLI(t, "search", "--task", "shapes", "--supernet", ckpt, "--data", data, "--out", filepath.Join(t.TempDir(), "b.json"),
		"--evals", "6", "--calib", "4", "--seed-archs", `[{"ks":[5,5,5,5],"e":[3,3,3,3],"d":[2,1],"r":50}]`)
	if err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("seed outside the space: err %v", err)
	}
}

// TestSearchTemplate: a task folder's task.json wins; a task name measures with the
// checkpoint's own preprocessing (an imported TensorFlow network's mean and std of 0.5, as
// natgw train validated it), and only a checkpoint without any falls back to ImageNet's.
func TestSearchTemplate(t *testing.T) {
	tf := preprocess.DefaultSpec(0)
	tf.Mean, tf.Std = [3]float32{0.5, 0.5, 0.5}, [3]float32{0.5, 0.5, 0.5}
	raw, err := json.Marshal(tf)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := supernet.Random(supernet.MobileNetV2Space(2), 1)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := supernet.Random(supernet.MobileNetV2Space(2), 1)
	if err != nil {
		t.Fatal(err)
	}
	imported.Meta = map[string]string{preprocess.MetaKey: string(raw)}

	folder := t.TempDir()
	own := preprocess.DefaultSpec(0)
	own.Mean = [3]float32{0.1, 0.2, 0.3}
	m, err := json.Marshal(task.Manifest{Preprocess: own, CropByResolution: map[int]float64{96: 0.875}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, task.ManifestFile), m, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, task string
		sn         *supernet.Supernet
		want       [3]float32 // mean
		crops      int
	}{
		{"task folder", folder, imported, own.Mean, 1},
		{"name, imported checkpoint", "flowers", imported, tf.Mean, 0},
		{"name, bare checkpoint", "flowers", bare, preprocess.DefaultSpec(0).Mean, 0},
	} {
		got, err := searchTemplate(tc.task, tc.sn)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Preprocess.Mean != tc.want || len(got.CropByResolution) != tc.crops {
			t.Errorf("%s: mean %v, %d crops; want %v, %d", tc.name, got.Preprocess.Mean, len(got.CropByResolution), tc.want, tc.crops)
		}
	}
	if _, err := searchTemplate("no/such task!", bare); err == nil {
		t.Error("a path that is neither a task folder nor a task name was accepted")
	}
}
