package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

func randomRGB(w, h int, seed uint64) *RGB {
	r := rand.New(rand.NewPCG(seed, 1))
	img := NewRGB(w, h)
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	return img
}

func TestResampleIdentityAndConstant(t *testing.T) {
	img := randomRGB(17, 17, 3)
	s := DefaultSpec(17)
	dst := make([]float32, s.TensorLen())
	if err := s.Resample(img, dst); err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		for i := range 17 * 17 {
			if got, want := dst[c*17*17+i], float32(img.Pix[3*i+c]); got != want {
				t.Fatalf("same-size resize changed c%d pixel %d: %v != %v", c, i, got, want)
			}
		}
	}
	// A constant image stays constant at any size and crop.
	flat := NewRGB(13, 7)
	for i := range flat.Pix {
		flat.Pix[i] = []uint8{10, 128, 250}[i%3]
	}
	for _, f := range []float64{1, 0.875, 0.5} {
		s := DefaultSpec(30)
		s.CropFraction = f
		dst := make([]float32, s.TensorLen())
		if err := s.Resample(flat, dst); err != nil {
			t.Fatal(err)
		}
		for i, v := range dst {
			if want := []float32{10, 128, 250}[i/900]; math.Abs(float64(v-want)) > 1e-4 {
				t.Fatalf("f=%v value %d = %v, want %v", f, i, v, want)
			}
		}
	}
}

func TestTensorNormalises(t *testing.T) {
	img := NewRGB(2, 2)
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	s := DefaultSpec(4)
	dst := make([]float32, s.TensorLen())
	if err := s.Tensor(img, dst); err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		want := (1 - s.Mean[c]) / s.Std[c]
		if got := dst[c*16+5]; math.Abs(float64(got-want)) > 1e-6 {
			t.Fatalf("channel %d = %v, want %v", c, got, want)
		}
	}
	if err := s.Tensor(img, make([]float32, 5)); err == nil {
		t.Fatal("short dst accepted")
	}
	if err := s.Tensor(&RGB{W: 2, H: 2}, dst); err == nil {
		t.Fatal("malformed image accepted")
	}
	bad := s
	bad.Layout = "NHWC"
	if err := bad.Tensor(img, dst); err == nil {
		t.Fatal("invalid spec accepted")
	}
}

func TestResizeRegion(t *testing.T) {
	img := randomRGB(20, 10, 9)
	// The full-image region equals the crop-1 eval path.
	s := DefaultSpec(12)
	a := make([]float32, s.TensorLen())
	b := make([]float32, s.TensorLen())
	if err := s.Resample(img, a); err != nil {
		t.Fatal(err)
	}
	if err := ResizeRegion(img, image.Rect(0, 0, 20, 10), 12, 12, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: %v != %v", i, a[i], b[i])
		}
	}
	// A same-size region is an exact copy of those pixels.
	c := make([]float32, 3*4*3)
	if err := ResizeRegion(img, image.Rect(5, 2, 9, 5), 4, 3, c); err != nil {
		t.Fatal(err)
	}
	for y := range 3 {
		for x := range 4 {
			if got, want := c[y*4+x], float32(img.Pix[3*((y+2)*20+x+5)]); got != want {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	for _, r := range []image.Rectangle{image.Rect(0, 0, 21, 10), image.Rect(3, 3, 3, 5), image.Rect(-1, 0, 4, 4)} {
		if err := ResizeRegion(img, r, 4, 3, c); err == nil {
			t.Errorf("region %v accepted", r)
		}
	}
}

// TestTensorMatchesTorch compares Spec.Tensor with F.interpolate(bilinear,
// align_corners=False, antialias=False) + centre crop + normalisation.
func TestTensorMatchesTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts python/torch")
	}
	py := testutil.Python(t, "NATGW_REQUIRE_TORCH", "torch", "numpy")
	type tcase struct {
		W, H, R int
		F       float64
	}
	var cases []tcase
	for _, f := range []float64{1, 0.875} {
		cases = append(cases,
			tcase{64, 64, 128, f}, tcase{64, 64, 160, f}, tcase{32, 32, 224, f}, tcase{64, 64, 48, f},
			tcase{64, 40, 48, f}, tcase{37, 61, 96, f}, // non-square: shorter side along x and y
		)
	}
	dir := t.TempDir()
	type pyCase struct {
		In   string     `json:"in"`
		Out  string     `json:"out"`
		W    int        `json:"w"`
		H    int        `json:"h"`
		R    int        `json:"r"`
		F    float64    `json:"f"`
		Mean [3]float32 `json:"mean"`
		Std  [3]float32 `json:"std"`
	}
	var pcs []pyCase
	imgs := make([]*RGB, len(cases))
	for i, c := range cases {
		imgs[i] = randomRGB(c.W, c.H, uint64(i))
		in := filepath.Join(dir, fmt.Sprintf("in%d.raw", i))
		if err := os.WriteFile(in, imgs[i].Pix, 0o644); err != nil {
			t.Fatal(err)
		}
		s := DefaultSpec(c.R)
		pcs = append(pcs, pyCase{in, filepath.Join(dir, fmt.Sprintf("out%d.raw", i)), c.W, c.H, c.R, c.F, s.Mean, s.Std})
	}
	js, _ := json.Marshal(pcs)
	cfg := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(cfg, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, filepath.Join("testdata", "torch_ref.py"), cfg).CombinedOutput(); err != nil {
		t.Fatalf("torch reference failed: %v\n%s", err, out)
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%dx%d_to_%d_crop%v", c.W, c.H, c.R, c.F), func(t *testing.T) {
			s := DefaultSpec(c.R)
			s.CropFraction = c.F
			got := make([]float32, s.TensorLen())
			if err := s.Tensor(imgs[i], got); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(pcs[i].Out)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != 4*len(got) {
				t.Fatalf("torch wrote %d floats, want %d", len(raw)/4, len(got))
			}
			var maxd float64
			for j := range got {
				want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
				maxd = max(maxd, math.Abs(float64(got[j]-want)))
			}
			t.Logf("max abs diff %.3g", maxd)
			if maxd > 1e-4 {
				t.Fatalf("max abs diff %g > 1e-4", maxd)
			}
		})
	}
}
