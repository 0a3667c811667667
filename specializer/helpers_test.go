package specializer

import (
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/supernet"
)

// tinySpec is a small space for tests: 3 classes, 3 stages, narrow widths, 32..64 px.
func tinySpec() *supernet.Spec {
	return &supernet.Spec{
		Name: "tiny_test", Classes: 3, Resolutions: []int{32, 40, 48, 56, 64},
		Kernels: []int{3, 5, 7}, Expands: []int{3, 4, 6}, Divisor: 8, SEReduction: 4,
		Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:  supernet.Conv{Out: 8, Kernel: 3, Stride: 2, Act: supernet.ActHSwish},
		First: supernet.FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{
			{Width: 16, Stride: 2, Act: supernet.ActReLU, Depths: []int{1, 2}},
			{Width: 24, Stride: 2, Act: supernet.ActReLU, SE: true, Depths: []int{1, 2}},
			{Width: 32, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2, 3}},
		},
		FinalExpand: &supernet.Pointwise{Out: 64, BN: true, Act: supernet.ActHSwish},
		FeatureMix:  &supernet.Pointwise{Out: 96, Act: supernet.ActHSwish},
	}
}

func tinySupernet(t testing.TB) *supernet.Supernet {
	t.Helper()
	sn, err := supernet.Random(tinySpec(), 3)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// classColours are the class colours of the generated data set; the class is learnable
// from the colour of the shape.
var classColours = []color.RGBA{{220, 40, 40, 255}, {40, 200, 60, 255}, {50, 70, 230, 255}}

// writeShapes writes an image-folder data set of coloured discs and squares on noisy grey,
// perSplit images per class per split, 64×64 PNG.
func writeShapes(t testing.TB, perSplit map[string]int) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	for split, n := range perSplit {
		for c, col := range classColours {
			dir := filepath.Join(root, split, fmt.Sprintf("c%d", c))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				img := image.NewRGBA(image.Rect(0, 0, 64, 64))
				cx, cy, rad := 16+rng.IntN(32), 16+rng.IntN(32), 6+rng.IntN(10)
				square := rng.IntN(2) == 0
				for y := range 64 {
					for x := range 64 {
						g := uint8(100 + rng.IntN(50))
						px := color.RGBA{g, g, g, 255}
						dx, dy := x-cx, y-cy
						if (square && abs(dx) <= rad && abs(dy) <= rad) || (!square && dx*dx+dy*dy <= rad*rad) {
							px = col
						}
						img.Set(x, y, px)
					}
				}
				testutil.WritePNG(t, filepath.Join(dir, fmt.Sprintf("%03d.png", i)), img)
			}
		}
	}
	return root
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// requireORT returns an onnxruntime Env or skips when the library is not installed
// (fails with NATGW_REQUIRE_ORT=1).
func requireORT(t testing.TB, threads int) *onnxrt.Env {
	t.Helper()
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: threads, InterOpThreads: 1})
	if err != nil {
		if os.Getenv("NATGW_REQUIRE_ORT") == "1" {
			t.Fatal(err)
		}
		t.Skipf("onnxruntime unavailable (install with scripts/install-onnxruntime.sh): %v", err)
	}
	return env
}
