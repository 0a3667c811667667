package task

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/natgw/natgw/preprocess"
)

// writeImages writes n PNGs of seeded noise into dir.
func writeImages(t *testing.T, dir string, n int, seed int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 24, 24))
		for p := range img.Pix {
			img.Pix[p] = uint8((p*7 + i*31 + seed*13) % 251)
		}
		img.Set(0, 0, color.RGBA{uint8(i), 0, 0, 255})
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
}

// calibratedTask is newTask with calibration images, loaded back.
func calibratedTask(t *testing.T) (*Task, string) {
	t.Helper()
	_, dir := newTask(t)
	writeImages(t, filepath.Join(dir, CalibDir), 5, 1)
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tk, dir
}

func logits(t *testing.T, tk *Task, e Entry, sub interface {
	BNStats() ([]float32, []float32)
}) []float32 {
	t.Helper()
	m, v := sub.BNStats()
	fresh, err := tk.Supernet.Extract(e.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.SetBNStats(m, v); err != nil {
		t.Fatal(err)
	}
	r := e.Arch.R
	x := make([]float32, 3*r*r)
	for i := range x {
		x[i] = float32(i%11) / 5
	}
	y, err := fresh.Compile().Forward(context.Background(), x, 1, r, r)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// TestStoreStats: stored statistics are exactly those a recalibration gives, so that a
// subnet served from them is the subnet whose accuracy was measured; serving then needs no
// forward pass.
func TestStoreStats(t *testing.T) {
	tk, dir := calibratedTask(t)
	n, err := tk.StoreStats(context.Background(), nil)
	if err != nil || n != tk.Archive.Len() {
		t.Fatalf("stored %d of %d: %v", n, tk.Archive.Len(), err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Stats.Len() != tk.Archive.Len() || back.Stats.Calibration != tk.Stats.Calibration {
		t.Fatalf("reloaded %d statistics for %q", back.Stats.Len(), back.Stats.Calibration)
	}
	for _, e := range back.Archive.Snapshot() {
		served, err := back.Subnet(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		recal, _ := back.Supernet.Extract(e.Arch)
		if err := back.Recalibrate(context.Background(), recal); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(logits(t, back, e, served), logits(t, back, e, recal)) {
			t.Fatalf("%s: served from stored statistics, it computes other logits than recalibrated", e.Hash[:12])
		}
	}
	if n, err := back.StoreStats(context.Background(), nil); err != nil || n != 0 {
		t.Fatalf("a second StoreStats computed %d (%v), want nothing", n, err)
	}
}

// TestStaleStats: statistics made for another calibration (here: another crop at one
// resolution) are refused, never served.
func TestStaleStats(t *testing.T) {
	tk, dir := calibratedTask(t)
	if _, err := tk.StoreStats(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	m := tk.Manifest
	m.CropByResolution = map[int]float64{32: 0.875}
	if err := SaveManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrStaleBNStats) {
		t.Fatalf("load after the crop changed: %v, want ErrStaleBNStats", err)
	}
}

// TestVersionCoversModelInputs: a task's version changes with whatever changes its models.
func TestVersionCoversModelInputs(t *testing.T) {
	tk, dir := calibratedTask(t)
	v := tk.Version()
	writeImages(t, filepath.Join(dir, CalibDir), 5, 2) // other calibration images
	other, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if other.Version() == v {
		t.Fatal("other calibration images, same task version")
	}
	relabelled := &Task{Manifest: other.Manifest, Labels: []string{"x", "y", "z"}, Stats: other.Stats}
	if relabelled.Version() == other.Version() {
		t.Fatal("other labels, same task version")
	}
}

// TestSubnetFollowsItsCalibration: an entry measured with another recipe is rebuilt with
// that recipe when its statistics are not stored.
func TestSubnetFollowsItsCalibration(t *testing.T) {
	tk, _ := calibratedTask(t)
	e := tk.Archive.Snapshot()[1]
	e.Calibration = &Calibration{Images: 2, Batch: 1}
	got, err := tk.Subnet(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tk.Supernet.Extract(e.Arch)
	sample := CalibSample(tk.Calib, 2)
	if err := want.Recalibrate(context.Background(), CalibBatchesOf(sample, tk.Preprocess(e.Arch.R), 1)); err != nil {
		t.Fatal(err)
	}
	gm, _ := got.BNStats()
	wm, _ := want.BNStats()
	if !reflect.DeepEqual(gm, wm) {
		t.Fatal("the entry's own recipe was not used")
	}
	all, _ := tk.Subnet(context.Background(), Entry{Arch: e.Arch})
	am, _ := all.BNStats()
	if reflect.DeepEqual(am, gm) {
		t.Fatal("two recipes gave the same statistics: the test shows nothing")
	}
}

func TestCalibSample(t *testing.T) {
	imgs := make([]*preprocess.RGB, 10)
	for i := range imgs {
		imgs[i] = preprocess.NewRGB(1, i+1)
	}
	got := CalibSample(imgs, 4)
	var heights []int
	for _, g := range got {
		heights = append(heights, g.H)
	}
	if !reflect.DeepEqual(heights, []int{1, 3, 6, 8}) {
		t.Fatalf("sample of 4 of 10: heights %v, want evenly spaced 1,3,6,8", heights)
	}
	if len(CalibSample(imgs, 0)) != 10 || len(CalibSample(imgs, 99)) != 10 {
		t.Fatal("0 or too many must mean all")
	}
	if (Calibration{}).Normal(500) != (Calibration{Images: 500, Batch: CalibBatch}) || !(Calibration{Images: 900}).IsTask(500) || (Calibration{Batch: 16}).IsTask(500) {
		t.Fatal("calibration recipes' defaults")
	}
}

func TestReadVal(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadVal(filepath.Join(dir, "none"), 3, preprocess.DefaultSpec(0)); !errors.Is(err, ErrNoVal) {
		t.Fatalf("missing folder: %v", err)
	}
	writeImages(t, filepath.Join(dir, "val", "0000"), 2, 1)
	writeImages(t, filepath.Join(dir, "val", "0002"), 1, 2)
	got, err := ReadVal(filepath.Join(dir, "val"), 3, preprocess.DefaultSpec(0))
	if err != nil || len(got) != 3 || got[0].Label != 0 || got[2].Label != 2 {
		t.Fatalf("read %d images (%v)", len(got), err)
	}
	for _, bad := range []string{"0003", "7", "cat"} {
		d := filepath.Join(t.TempDir(), "val")
		writeImages(t, filepath.Join(d, bad), 1, 1)
		if _, err := ReadVal(d, 3, preprocess.DefaultSpec(0)); err == nil || errors.Is(err, ErrNoVal) {
			t.Errorf("class folder %q accepted (%v)", bad, err)
		}
	}
}
