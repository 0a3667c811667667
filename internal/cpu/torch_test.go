package cpu

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

func writeBin(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readBin(t *testing.T, path string, n int) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d", path, len(b), 4*n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestTorchParity compares convolutions and activations with PyTorch on the same inputs.
func TestTorchParity(t *testing.T) {
	// No require variable: without torch this check skips, never fails.
	py := testutil.Python(t, "", "torch")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(21, 22))

	type convJob struct {
		name string
		c    Conv
		act  Act
	}
	convs := []convJob{
		{"dw_k5s2", Conv{N: 2, C: 24, H: 28, W: 28, K: 24, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Groups: 24}, ActNone},
		{"dw_k5s2_same", Conv{N: 1, C: 16, H: 28, W: 28, K: 16, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 2, PadRight: 2, Groups: 16}, ActHSwish},
		{"dw_k7s1", Conv{N: 1, C: 12, H: 15, W: 15, K: 12, KH: 7, KW: 7, StrideH: 1, StrideW: 1, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3, Groups: 12}, ActReLU6},
		{"dense_3x3s2", Conv{N: 2, C: 3, H: 33, W: 32, K: 16, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 1}, ActHSwish},
		{"pointwise", Conv{N: 1, C: 40, H: 14, W: 14, K: 24, KH: 1, KW: 1, StrideH: 1, StrideW: 1, Groups: 1}, ActNone},
	}
	var jobs []map[string]any
	for _, cj := range convs {
		c := cj.c
		x := randSlice(r, c.N*c.C*c.H*c.W, 3)
		w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 1)
		b := randSlice(r, c.K, 1)
		writeBin(t, filepath.Join(dir, cj.name+".x"), x)
		writeBin(t, filepath.Join(dir, cj.name+".w"), w)
		writeBin(t, filepath.Join(dir, cj.name+".b"), b)
		jobs = append(jobs, map[string]any{"op": "conv", "conv": c, "act": cj.act.String(),
			"x": cj.name + ".x", "w": cj.name + ".w", "b": cj.name + ".b", "out": cj.name + ".y"})
	}
	// Activation inputs: a dense sweep around the kinks plus random values.
	var av []float32
	for v := float32(-8); v <= 8; v += 1.0 / 64 {
		av = append(av, v)
	}
	av = append(av, randSlice(r, 4096, 10)...)
	writeBin(t, filepath.Join(dir, "act.x"), av)
	acts := []Act{ActHSwish, ActHSigmoid, ActReLU6}
	for _, a := range acts {
		jobs = append(jobs, map[string]any{"op": "act", "act": a.String(), "x": "act.x", "out": "act." + a.String()})
	}
	spec, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "torch_ref.py"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, script, dir).CombinedOutput(); err != nil {
		t.Fatalf("torch_ref.py: %v\n%s", err, out)
	}

	for _, cj := range convs {
		t.Run(cj.name, func(t *testing.T) {
			c := cj.c
			x := readBin(t, filepath.Join(dir, cj.name+".x"), c.N*c.C*c.H*c.W)
			w := readBin(t, filepath.Join(dir, cj.name+".w"), c.K*c.C/c.groups()*c.KH*c.KW)
			b := readBin(t, filepath.Join(dir, cj.name+".b"), c.K)
			n := c.N * c.K * c.OutH() * c.OutW()
			want := readBin(t, filepath.Join(dir, cj.name+".y"), n)
			got := make([]float32, n)
			ConvForward(c, x, w, b, cj.act, got)
			_, scale := refConv(c, x, w, b, ActNone)
			w64 := make([]float64, n)
			for i, v := range want {
				w64[i] = float64(v)
			}
			compare(t, "y vs torch", got, w64, scale)
		})
	}
	for _, a := range acts {
		t.Run("act_"+a.String(), func(t *testing.T) {
			want := readBin(t, filepath.Join(dir, "act."+a.String()), len(av))
			got := append([]float32(nil), av...)
			Apply(a, got)
			diff := 0
			for i := range got {
				if got[i] != want[i] {
					if diff < 5 {
						t.Errorf("%s(%g) = %g, torch %g", a, av[i], got[i], want[i])
					}
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%s: %d of %d values differ from torch bit for bit", a, diff, len(av))
			}
		})
	}
}
