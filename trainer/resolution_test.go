package trainer

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// TestFitElasticResolution: with an elastic-resolution loader every step trains its
// subnets at the batch's size, and over an epoch each listed size is trained.
func TestFitElasticResolution(t *testing.T) {
	root := t.TempDir()
	for c, class := range []string{"a", "b", "c"} {
		for i := range 8 {
			img := image.NewRGBA(image.Rect(0, 0, 20, 20))
			for p := range img.Pix {
				img.Pix[p] = uint8(40*c + 3*i + p%7)
			}
			img.Set(0, 0, color.RGBA{255, 0, 0, 255})
			testutil.WritePNG(t, filepath.Join(root, "train", class, fmt.Sprintf("%d.png", i)), img)
		}
	}
	set, err := dataset.Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{16, 24, 32}
	loader, err := dataset.NewLoader(dataset.Config{Set: set, Spec: preprocess.DefaultSpec(24), Batch: 2, Shuffle: true, Seed: 5,
		Augment: &dataset.Augment{RandomResizedCrop: true, HFlip: true}, Workers: 1, DropLast: true, Resolutions: sizes})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := supernet.Random(tinySpec(3), 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.Epochs = 2, 24, 1, 0.01, 1
	cfg.GraphCache = 64
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Fit(context.Background(), Data{Train: loader})
	if err != nil {
		t.Fatal(err)
	}
	if res.StepsRun != 12 {
		t.Fatalf("%d steps, want 12", res.StepsRun)
	}
	trained := map[string]bool{}
	for key := range tr.graphs.byKey { // arch JSON + "/n/r"
		trained[key[strings.LastIndexByte(key, '/')+1:]] = true
	}
	for _, r := range sizes {
		if !trained[fmt.Sprint(r)] {
			t.Errorf("no subnet trained at %d px (graphs at %v)", r, trained)
		}
	}
	if len(trained) != len(sizes) {
		t.Errorf("graphs at %v, want exactly %v", trained, sizes)
	}
}
