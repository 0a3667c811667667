package supernet

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"

	"github.com/natgw/natgw/internal/pth"
)

func TestNativeRoundTrip(t *testing.T) {
	sn, dir := ofaSupernet(t)
	sn.Meta[MetaVersion] = "test"
	var buf bytes.Buffer
	if err := sn.Write(&buf, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := sn.Write(&again, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("native format is not deterministic")
	}
	back, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.Name != sn.Spec.Name || back.Meta[MetaVersion] != "test" {
		t.Fatalf("spec %s meta %v", back.Spec.Name, back.Meta)
	}
	for _, p := range sn.Params() {
		q, ok := back.Param(p.Name)
		if !ok || !equalF32(p.Data, q.Data) {
			t.Fatalf("tensor %s differs after the round trip", p.Name)
		}
	}
	// Half precision keeps the logits close on a parity case.
	var half bytes.Buffer
	if err := sn.Write(&half, SaveOptions{Half: true}); err != nil {
		t.Fatal(err)
	}
	if half.Len() > buf.Len()*6/10 {
		t.Errorf("half file %d bytes vs %d", half.Len(), buf.Len())
	}
	hs, err := Read(bytes.NewReader(half.Bytes()), int64(half.Len()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := loadCase(t, dir, "A2_uniform_k5_e4_d3")
	sub, err := hs.Extract(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	x := testutil.ReadF32(t, filepath.Join(dir, c.Input.File))
	got, err := sub.Compile().Forward(context.Background(), x, 2, c.Resolution, c.Resolution)
	if err != nil {
		t.Fatal(err)
	}
	want := testutil.ReadF32(t, filepath.Join(dir, c.Logits.File))
	t.Logf("float16 weights: logits max abs diff %.3g", testutil.MaxAbsDiff(t, got, want))
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLoadRejects checks that each way a checkpoint can disagree with the spec fails with an
// error naming the first bad key.
func TestLoadRejects(t *testing.T) {
	spec := OFAMobileNetV3(1.0, 5)
	good, err := Random(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func([]Param) []Param
		want string
	}{
		{"missing kernel matrix", func(ps []Param) []Param {
			return drop(ps, "blocks.3.conv.depth_conv.conv.7to5_matrix")
		}, "key blocks.3.conv.depth_conv.conv.7to5_matrix: missing"},
		{"wrong shape", func(ps []Param) []Param {
			for i := range ps {
				if ps[i].Name == "blocks.2.conv.point_linear.conv.conv.weight" {
					ps[i].Shape = []int{24, 96, 1}
				}
			}
			return ps
		}, "key blocks.2.conv.point_linear.conv.conv.weight: shape [24 96 1]"},
		{"unknown key", func(ps []Param) []Param {
			return append([]Param{{Name: "blocks.21.conv.x", Shape: []int{1}, Data: []float32{0}}}, ps...)
		}, "key blocks.21.conv.x: not part of spec"},
		{"duplicate key", func(ps []Param) []Param { return append(ps, ps[0]) }, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := append([]Param(nil), good.Params()...)
			_, err := New(spec, tc.mut(ps), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, want %q", err, tc.want)
			}
		})
	}
}

func drop(ps []Param, name string) []Param {
	var out []Param
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}

func TestCanonicalKeyAliases(t *testing.T) {
	spec := OFAMobileNetV3(1.0, 5)
	want := map[string]bool{}
	for _, k := range spec.Keys() {
		want[k.Name] = true
	}
	for old, canon := range map[string]string{
		"blocks.3.mobile_inverted_conv.depth_conv.bn.bn.weight": "blocks.3.conv.depth_conv.bn.bn.weight",
		"blocks.3.conv.depth_conv.bn.weight":                    "blocks.3.conv.depth_conv.bn.bn.weight",
		"first_conv.bn.bn.weight":                               "first_conv.bn.weight",
		"classifier.linear.linear.weight":                       "classifier.linear.weight",
		"blocks.0.mobile_inverted_conv.depth_conv.conv.weight":  "blocks.0.conv.depth_conv.conv.weight",
		"blocks.5.conv.point_linear.conv.weight":                "blocks.5.conv.point_linear.conv.conv.weight",
	} {
		if got := canonicalKey(old, want); got != canon {
			t.Errorf("canonicalKey(%s) = %s, want %s", old, got, canon)
		}
	}
}

func TestSupernetForwardMatchesSubnet(t *testing.T) {
	// Random weights through the native format and a second spec family: extraction,
	// counting and the forward pass must work for any spec value.
	for _, spec := range []*Spec{OFAMobileNetV3(1.2, 7), MobileNetV2Space(7)} {
		sn, err := Random(spec, 5)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := sn.Write(&buf, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		back, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []Arch{spec.Smallest(), spec.Largest()} {
			sub, err := back.Extract(a)
			if err != nil {
				t.Fatal(err)
			}
			if c := sub.Count(); c.MAdds <= 0 || c.Params <= 0 {
				t.Fatalf("%s: counts %+v", spec.Name, c)
			}
			x := make([]float32, 3*a.R*a.R)
			for i := range x {
				x[i] = float32(i%17) / 17
			}
			y, err := sub.Compile().Forward(context.Background(), x, 1, a.R, a.R)
			if err != nil || len(y) != 7 {
				t.Fatalf("%s: forward %v %d", spec.Name, err, len(y))
			}
		}
	}
}

func FuzzRead(f *testing.F) {
	sn, err := Random(&Spec{
		Name: "tiny", Classes: 2, Resolutions: []int{32}, Kernels: []int{3, 5}, Expands: []int{2}, Divisor: 8,
		SEReduction: 4, Padding: PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:   Conv{Out: 8, Kernel: 3, Stride: 2, Act: ActReLU},
		First:  FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: ActReLU},
		Stages: []Stage{{Width: 8, Stride: 2, Act: ActHSwish, SE: true, Depths: []int{1}}},
	}, 1)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sn.Write(&buf, SaveOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("PK\x03\x04garbage"))
	f.Add([]byte{0x80, 0x02, 0x8a, 0x0a})
	f.Fuzz(func(t *testing.T, data []byte) {
		sn, err := Read(bytes.NewReader(data), int64(len(data)), LoadOptions{})
		if err == nil && sn.Spec == nil {
			t.Fatal("nil spec without error")
		}
	})
}

// TestTorchRoundTrip: a supernet written in OFA's torch layout loads back identically, with
// OFA's 475 keys (num_batches_tracked included) in OFA's order.
func TestTorchRoundTrip(t *testing.T) {
	sn, dir := ofaSupernet(t)
	var buf bytes.Buffer
	if err := sn.WriteTorch(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sn.Params() {
		q, ok := back.Param(p.Name)
		if !ok || !equalF32(p.Data, q.Data) {
			t.Fatalf("tensor %s differs after the torch round trip", p.Name)
		}
	}
	ts, err := pth.Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			Key string `json:"key"`
		} `json:"keys"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "state_dict_keys.json"))
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(doc.Keys) {
		t.Fatalf("%d keys written, OFA has %d", len(ts), len(doc.Keys))
	}
	for i := range ts {
		if ts[i].Name != doc.Keys[i].Key {
			t.Fatalf("key %d: %s, OFA has %s", i, ts[i].Name, doc.Keys[i].Key)
		}
	}
}

func TestSelectClasses(t *testing.T) {
	sn, err := Random(OFAMobileNetV3(1.0, 5), 1)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := sn.SelectClasses([]int{4, 1})
	if err != nil {
		t.Fatal(err)
	}
	a := sn.Spec.Smallest()
	full, _ := sn.Extract(a)
	part, _ := sel.Extract(a)
	x := make([]float32, 3*a.R*a.R)
	for i := range x {
		x[i] = float32(i%13) / 13
	}
	yf, _ := full.Compile().Forward(context.Background(), x, 1, a.R, a.R)
	yp, _ := part.Compile().Forward(context.Background(), x, 1, a.R, a.R)
	// The selected head's rows are the full head's rows, so the logits agree up to the
	// summation order, which a matrix kernel may choose by the number of rows.
	var scale float64
	for _, v := range yf {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	if sel.Spec.Classes != 2 || testutil.MaxAbsDiff(t, yp, []float32{yf[4], yf[1]}) > 1e-5*scale {
		t.Fatalf("selected logits %v, full %v", yp, yf)
	}
	if _, err := sn.SelectClasses([]int{5}); err == nil {
		t.Fatal("row outside the head accepted")
	}
}

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want Format
	}{
		{"torch zip", []byte("PK\x03\x04\x00\x00"), FormatTorch},
		{"torch legacy, protocol 2", []byte{0x80, 0x02, 0x8a, 0x0a}, FormatTorch},
		{"safetensors", []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\""), FormatNative},
		{"safetensors whose header length starts like a pickle", []byte("\x80\x89\x00\x00\x00\x00\x00\x00{\"_"), FormatNative},
		{"pickle opcode without a protocol", []byte{0x80, 0x00, 0x00}, ""},
		{"empty", nil, ""},
		{"text", []byte("hello, world"), ""},
	} {
		got, err := DetectFormat(tc.head)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestNativeHeaderLength0x80: a native file whose header length's first byte is 0x80 (the
// pickle PROTO opcode) loads as native.
func TestNativeHeaderLength0x80(t *testing.T) {
	sn, err := Random(MobileNetV2Space(3), 1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Meta["pad"] = ""
	var buf bytes.Buffer
	for range 4 {
		buf.Reset()
		if err := sn.Write(&buf, SaveOptions{Half: true}); err != nil {
			t.Fatal(err)
		}
		if buf.Bytes()[0] == 0x80 {
			break
		}
		sn.Meta["pad"] += strings.Repeat("x", (0x80-int(buf.Bytes()[0])+256)%256)
	}
	if buf.Bytes()[0] != 0x80 {
		t.Fatalf("could not pad the header to a length starting with 0x80: % x", buf.Bytes()[:8])
	}
	back, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Meta["pad"] != sn.Meta["pad"] {
		t.Fatal("metadata lost")
	}
}
