package pth

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

func writeSample() []Tensor {
	return []Tensor{
		{Name: "a.weight", DType: "F32", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 4, 5, 6}},
		{Name: "a.bn.num_batches_tracked", DType: "I64", Shape: []int{}, Ints: []int64{7}},
		{Name: "b", DType: "F32", Shape: []int{4}, Data: []float32{0.25, 0, -1e-3, 1e6}},
	}
}

func TestWriteRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "ckpt", writeSample()); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	Write(&again, "ckpt", writeSample())
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("Write is not deterministic")
	}
	got, err := Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	want := writeSample()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || len(g.Shape) != len(w.Shape) {
			t.Fatalf("tensor %d: %+v, want %+v", i, g, w)
		}
		for j := range w.Data {
			if g.Data[j] != w.Data[j] {
				t.Fatalf("%s[%d] = %v, want %v", w.Name, j, g.Data[j], w.Data[j])
			}
		}
		for j := range w.Ints {
			if g.Ints[j] != w.Ints[j] {
				t.Fatalf("%s[%d] = %v, want %v", w.Name, j, g.Ints[j], w.Ints[j])
			}
		}
	}
	if err := Write(&buf, "x", []Tensor{{Name: "h", DType: "F16", Shape: []int{1}, Data: []float32{1}}}); err == nil {
		t.Fatal("F16 accepted")
	}
	if err := Write(&buf, "x", []Tensor{{Name: "s", DType: "F32", Shape: []int{3}, Data: []float32{1}}}); err == nil {
		t.Fatal("shape mismatch accepted")
	}
}

// TestWriteReadByTorch checks that PyTorch itself loads what Write produces.
func TestWriteReadByTorch(t *testing.T) {
	py := testutil.Python(t, "NATGW_REQUIRE_TORCH", "torch")
	p := filepath.Join(t.TempDir(), "w.pth")
	var buf bytes.Buffer
	if err := Write(&buf, "w", writeSample()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, buf.Bytes(), 0o644)
	out, err := exec.Command(py, "-c", `
import sys, torch
sd = torch.load(sys.argv[1])["state_dict"]
print(list(sd.keys()), sd["a.weight"].tolist(), int(sd["a.bn.num_batches_tracked"]), sd["b"].tolist(), sd["a.weight"].dtype, sd["a.bn.num_batches_tracked"].dtype)
`, p).CombinedOutput()
	if err != nil {
		t.Fatalf("torch.load: %v\n%s", err, out)
	}
	want := "['a.weight', 'a.bn.num_batches_tracked', 'b'] [[1.0, -2.0, 3.5], [4.0, 5.0, 6.0]] 7 [0.25, 0.0, -0.0010000000474974513, 1000000.0] torch.float32 torch.int64"
	if strings.TrimSpace(string(out)) != want {
		t.Fatalf("torch read\n%s\nwant\n%s", out, want)
	}
}
