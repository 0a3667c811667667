package preprocess

import (
	"math"
	"testing"
)

// TestResizePlanes: half-pixel centres with the edges clamped, as PyTorch's
// interpolate(mode="bilinear", align_corners=False) without antialiasing, on every plane.
func TestResizePlanes(t *testing.T) {
	plane := func(h int, f func(y, x int) float32) []float32 {
		p := make([]float32, h*h)
		for y := range h {
			for x := range h {
				p[y*h+x] = f(y, x)
			}
		}
		return p
	}
	ramp := func(y, x int) float32 { return float32(x) }
	for _, tc := range []struct {
		name string
		in   []float32
		h, r int
		want []float32 // every row
	}{
		{"up 2 to 4", plane(2, ramp), 2, 4, []float32{0, 0.25, 0.75, 1}},
		{"down 4 to 2", plane(4, ramp), 4, 2, []float32{0.5, 2.5}},
		{"same size", plane(3, func(_, x int) float32 { return float32(x * x) }), 3, 3, []float32{0, 1, 4}},
	} {
		src := append(append([]float32(nil), tc.in...), tc.in...) // two planes alike
		dst := make([]float32, 2*tc.r*tc.r)
		if err := ResizePlanes(src, 2, tc.h, tc.r, dst); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for row := range 2 * tc.r {
			for x, w := range tc.want {
				if g := dst[row*tc.r+x]; math.Abs(float64(g-w)) > 1e-6 {
					t.Fatalf("%s: row %d = %v, want %v", tc.name, row, dst[row*tc.r:(row+1)*tc.r], tc.want)
				}
			}
		}
	}
	// Vertically too, and each plane on its own: a ramp down the rows, scaled per plane.
	src := append(plane(2, func(y, _ int) float32 { return float32(y) }), plane(2, func(y, _ int) float32 { return float32(10 * y) })...)
	dst := make([]float32, 2*16)
	if err := ResizePlanes(src, 2, 2, 4, dst); err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{0, 0.25, 0.75, 1} {
		if g := dst[i*4]; g != want {
			t.Errorf("plane 0, row %d = %v, want %v", i, g, want)
		}
		if g := dst[16+i*4]; g != 10*want {
			t.Errorf("plane 1, row %d = %v, want %v", i, g, 10*want)
		}
	}
	if err := ResizePlanes(src, 2, 2, 4, dst[:5]); err == nil {
		t.Error("a short dst was accepted")
	}
}
