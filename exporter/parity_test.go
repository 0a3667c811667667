package exporter

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/supernet"
)

// parityTol is the bound on max |logit difference| (the fixtures' logits reach ~10).
const parityTol = 1e-4

// TestParityOFA runs the export of each OFA parity case under onnxruntime, at batch 2
// and image by image, against the PyTorch logits and supernet's Go forward; every
// exported file also goes through onnx.checker.
func TestParityOFA(t *testing.T) {
	dir := parityDir(t)
	env := ortEnv(t, 2)
	sn := loadOFA(t, dir)
	tmp := t.TempDir()
	var files []string
	for _, id := range parityIDs {
		t.Run(id, func(t *testing.T) {
			c := loadCase(t, dir, id)
			sub, err := sn.Extract(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			model, err := Export(sub, Options{Task: "parity", SupernetID: "ofa-parity"})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(tmp, id+".onnx")
			if err := os.WriteFile(path, model, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, path)

			r := c.Resolution
			x := testutil.ReadF32(t, filepath.Join(dir, id+"_input.bin"))
			want := testutil.ReadF32(t, filepath.Join(dir, id+"_logits.bin"))
			if len(x) != 2*3*r*r || len(want) != 2*102 {
				t.Fatalf("fixture sizes: input %d, logits %d", len(x), len(want))
			}
			goOut, err := sub.Compile().Forward(context.Background(), x, 2, r, r)
			if err != nil {
				t.Fatal(err)
			}
			got := ortRun(t, env, model, x, 2, r)
			if d := testutil.MaxAbsDiff(t, got, want); d > parityTol {
				t.Errorf("batch 2: onnxruntime vs PyTorch logits: max abs diff %.3g > %g", d, parityTol)
			} else {
				t.Logf("batch 2: onnxruntime vs PyTorch %.3g, vs Go %.3g", d, testutil.MaxAbsDiff(t, got, goOut))
			}
			if d := testutil.MaxAbsDiff(t, got, goOut); d > parityTol {
				t.Errorf("batch 2: onnxruntime vs Go forward: max abs diff %.3g > %g", d, parityTol)
			}
			img := 3 * r * r
			for i := range 2 {
				one := ortRun(t, env, model, x[i*img:(i+1)*img], 1, r)
				if d := testutil.MaxAbsDiff(t, one, want[i*102:(i+1)*102]); d > parityTol {
					t.Errorf("batch 1, image %d: onnxruntime vs PyTorch: max abs diff %.3g", i, d)
				}
				if d := testutil.MaxAbsDiff(t, one, goOut[i*102:(i+1)*102]); d > parityTol {
					t.Errorf("batch 1, image %d: onnxruntime vs Go forward: max abs diff %.3g", i, d)
				}
			}
		})
	}
	if len(files) > 0 {
		checkONNX(t, files...)
	}
}

// TestParityTFSame checks TensorFlow SAME padding (asymmetric pads at stride 2 on even
// sizes) and ReLU6 on the MobileNetV2 space with random weights against the Go forward.
func TestParityTFSame(t *testing.T) {
	env := ortEnv(t, 2)
	spec := supernet.MobileNetV2Space(10)
	sn, err := supernet.Random(spec, 11)
	if err != nil {
		t.Fatal(err)
	}
	largest := spec.Largest()
	cases := []struct {
		name string
		arch supernet.Arch
	}{
		{"smallest_r96", spec.Smallest()},
		{"largest_r224", largest},
		{"k5_e4_r112", spec.Uniform(5, 4, 2, 112)},
		{"k7_e3_r176", spec.Uniform(7, 3, 3, 176)},
	}
	tmp := t.TempDir()
	var files []string
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub, err := sn.Extract(c.arch)
			if err != nil {
				t.Fatal(err)
			}
			enliven(sub, uint64(i))
			model, err := Export(sub, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if n := asymmetricConvs(t, model); n == 0 {
				t.Fatal("no Conv with asymmetric pads: SAME padding not exercised")
			}
			path := filepath.Join(tmp, c.name+".onnx")
			if err := os.WriteFile(path, model, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, path)
			r := sub.Resolution
			x := randInput(uint64(100+i), 2*3*r*r)
			want, err := sub.Compile().Forward(context.Background(), x, 2, r, r)
			if err != nil {
				t.Fatal(err)
			}
			if m := maxAbs(want); !(m > 0.1 && m < 1e3) {
				t.Fatalf("reference logits have max |v| %.3g: the comparison would be meaningless", m)
			}
			if d := testutil.MaxAbsDiff(t, want[:10], want[10:]); d < 10*parityTol {
				t.Fatalf("logits of two images differ by only %.3g: they hardly depend on the input", d)
			}
			got := ortRun(t, env, model, x, 2, r)
			d := testutil.MaxAbsDiff(t, got, want)
			if d > parityTol {
				t.Fatalf("onnxruntime vs Go forward: max abs diff %.3g > %g", d, parityTol)
			}
			t.Logf("max abs diff %.3g, max abs logit %.3g", d, maxAbs(want))
		})
	}
	if len(files) > 0 {
		checkONNX(t, files...)
	}
}

// TestPaddingMatters guards the TF-SAME test against passing trivially: the same subnet
// exported with symmetric padding must give clearly different logits.
func TestPaddingMatters(t *testing.T) {
	env := ortEnv(t, 2)
	spec := supernet.MobileNetV2Space(10)
	sub := randomSubnet(t, spec, 11, nil)
	enliven(sub, 0)
	r := sub.Resolution
	x := randInput(5, 3*r*r)
	same, err := Export(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub.Padding = supernet.PadSymmetric
	sym, err := Export(sub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.MaxAbsDiff(t, ortRun(t, env, same, x, 1, r), ortRun(t, env, sym, x, 1, r)); d < 1e-2 {
		t.Fatalf("padding mode changes the logits by only %.3g", d)
	}
}

// asymmetricConvs counts Conv nodes whose pads differ before and after.
func asymmetricConvs(t testing.TB, model []byte) int {
	t.Helper()
	var m onnx.ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, node := range m.Graph.Node {
		for _, a := range node.Attribute {
			if a.Name == "pads" && len(a.Ints) == 4 && (a.Ints[0] != a.Ints[2] || a.Ints[1] != a.Ints[3]) {
				n++
			}
		}
	}
	return n
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}
