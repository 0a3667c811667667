package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.safetensors")

// halfRef computes a binary16 value from its definition.
func halfRef(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return s * math.Ldexp(m/1024, -14)
	case 0x1f:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	}
	return s * math.Ldexp(1+m/1024, e-15)
}

func TestHalfConversion(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		hv := uint16(h)
		f := halfToFloat32(hv)
		want := halfRef(hv)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("%#04x widened to %v, want NaN", h, f)
			}
			if back := float32ToHalf(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != hv&0x8000 {
				t.Fatalf("NaN %#04x narrowed to %#04x", h, back)
			}
			continue
		}
		if float64(f) != want || math.Signbit(float64(f)) != math.Signbit(want) {
			t.Fatalf("%#04x widened to %v, want %v", h, f, want)
		}
		if back := float32ToHalf(f); back != hv {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}

// Rounding: for each pair of adjacent positive halves, the midpoint rounds to the even one and anything off the
// midpoint by one float32 ulp rounds to the nearer one.
func TestHalfRounding(t *testing.T) {
	for h := uint16(0); h < 0x7c00; h++ {
		lo, hi := float64(halfToFloat32(h)), math.Inf(1)
		if h+1 < 0x7c00 {
			hi = float64(halfToFloat32(h + 1))
		} else {
			hi = 65536 // the next step past the largest half: values from its midpoint up overflow
		}
		mid := float32((lo + hi) / 2)
		if float64(mid) != (lo+hi)/2 {
			t.Fatalf("midpoint of %#04x not exact in float32", h)
		}
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		for _, neg := range []bool{false, true} {
			sgn, s := float32(1), uint16(0)
			if neg {
				sgn, s = -1, 0x8000
			}
			cases := []struct {
				x    float32
				want uint16
			}{
				{sgn * mid, s | even},
				{sgn * math.Nextafter32(mid, 0), s | h},
				{sgn * math.Nextafter32(mid, float32(math.Inf(1))), s | (h + 1)},
			}
			for _, c := range cases {
				if got := float32ToHalf(c.x); got != c.want {
					t.Fatalf("float32ToHalf(%g) = %#04x, want %#04x", c.x, got, c.want)
				}
			}
		}
	}
	for _, c := range []struct {
		x    float32
		want uint16
	}{
		{65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {-1e10, 0xfc00},
		{float32(math.Inf(1)), 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{math.Float32frombits(1), 0}, {-math.Float32frombits(1), 0x8000}, // far below the smallest subnormal
		{float32(math.Ldexp(1, -25)), 0}, {float32(math.Ldexp(1.0000001, -25)), 1}, {float32(math.Ldexp(1, -24)), 1},
	} {
		if got := float32ToHalf(c.x); got != c.want {
			t.Errorf("float32ToHalf(%g) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
}

func sampleFile() File {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	return File{
		Metadata: map[string]string{"format": "pt", "arch": "ofa_mbv3", "zeta": "last", "alpha": "first", "quote\"": "\u00e9\n"},
		Tensors: []Tensor{
			{Name: "conv.weight", DType: "F32", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, nan, inf, -0}},
			{Name: "half", DType: "F16", Shape: []int{7}, Data: []float32{1, 0.1, 65504, 70000, 6e-8, 1e-9, -inf}},
			{Name: "odd.half", DType: "F16", Shape: []int{1}, Data: []float32{nan}},
			{Name: "bn.num_batches_tracked", DType: "I64", Shape: []int{}, Ints: []int64{math.MaxInt64}},
			{Name: "empty", DType: "F32", Shape: []int{0, 4}, Data: []float32{}},
			{Name: "ints", DType: "I64", Shape: []int{3}, Ints: []int64{-1, 0, 1 << 40}},
		},
	}
}

func encode(t testing.TB, f File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sameFloat(a, b float32) bool {
	if math.IsNaN(float64(a)) {
		return math.IsNaN(float64(b))
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestRoundTrip(t *testing.T) {
	in := sampleFile()
	b := encode(t, in)
	out, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.Metadata) != fmt.Sprint(in.Metadata) {
		t.Errorf("metadata %v, want %v", out.Metadata, in.Metadata)
	}
	if len(out.Tensors) != len(in.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(out.Tensors), len(in.Tensors))
	}
	for i, w := range in.Tensors {
		g := out.Tensors[i]
		if g.Name != w.Name || g.DType != w.DType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) {
			t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
			continue
		}
		if len(g.Data) != len(w.Data) || len(g.Ints) != len(w.Ints) {
			t.Errorf("%s: got %d/%d values, want %d/%d", g.Name, len(g.Data), len(g.Ints), len(w.Data), len(w.Ints))
			continue
		}
		for j, v := range w.Data {
			want := v
			if w.DType == "F16" {
				want = halfToFloat32(float32ToHalf(v))
			}
			if !sameFloat(g.Data[j], want) {
				t.Errorf("%s[%d] = %v, want %v", g.Name, j, g.Data[j], want)
			}
		}
		for j, v := range w.Ints {
			if g.Ints[j] != v {
				t.Errorf("%s[%d] = %d, want %d", g.Name, j, g.Ints[j], v)
			}
		}
	}
	// Specific F16 results: 0.1 rounds to 0x2e66, 70000 overflows, 6e-8 is the smallest subnormal, 1e-9 underflows.
	half := out.Tensors[1].Data
	for j, want := range []float32{1, halfToFloat32(0x2e66), 65504, float32(math.Inf(1)), halfToFloat32(1), 0, float32(math.Inf(-1))} {
		if !sameFloat(half[j], want) {
			t.Errorf("half[%d] = %v, want %v", j, half[j], want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	first := encode(t, sampleFile())
	for i := 0; i < 20; i++ { // map iteration order changes between runs
		if b := encode(t, sampleFile()); !bytes.Equal(b, first) {
			t.Fatalf("run %d wrote different bytes", i)
		}
	}
	hlen := binary.LittleEndian.Uint64(first)
	if (8+hlen)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", 8+hlen)
	}
}

func TestGolden(t *testing.T) {
	got := encode(t, sampleFile())
	path := filepath.Join("testdata", "golden.safetensors")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update if the change is intended)", path)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	if err := WriteFile(path, sampleFile()); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(sampleFile().Tensors) {
		t.Errorf("got %d tensors", len(f.Tensors))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	// A failed write leaves the old file in place and no temp file.
	bad := File{Tensors: []Tensor{{Name: "x", DType: "F32", Shape: []int{2}, Data: []float32{1}}}}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("invalid file written")
	}
	if _, err := ReadFile(path); err != nil {
		t.Errorf("old file damaged: %v", err)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestWriteInvalid(t *testing.T) {
	tests := []struct {
		name string
		t    Tensor
		want string
	}{
		{"short data", Tensor{Name: "a", DType: "F32", Shape: []int{3}, Data: []float32{1}}, "needs 3"},
		{"ints for float", Tensor{Name: "a", DType: "F32", Shape: []int{1}, Data: []float32{1}, Ints: []int64{1}}, "Ints"},
		{"data for I64", Tensor{Name: "a", DType: "I64", Shape: []int{1}, Ints: []int64{1}, Data: []float32{1}}, "Data"},
		{"bad dtype", Tensor{Name: "a", DType: "BF16", Shape: []int{1}, Data: []float32{1}}, "cannot be written"},
		{"negative dim", Tensor{Name: "a", DType: "F32", Shape: []int{-1}}, "negative"},
		{"empty name", Tensor{DType: "F32", Shape: []int{0}}, "name"},
		{"metadata name", Tensor{Name: "__metadata__", DType: "F32", Shape: []int{0}}, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, File{Tensors: []Tensor{tc.t}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
	dup := File{Tensors: []Tensor{{Name: "a", DType: "F32", Shape: []int{0}}, {Name: "a", DType: "F32", Shape: []int{0}}}}
	if err := Write(&bytes.Buffer{}, dup); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate names: %v", err)
	}
}

// raw builds a file from a header string and data bytes.
func raw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestReadMalformed(t *testing.T) {
	eight := make([]byte, 8)
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "no header length"},
		{"short", []byte{1, 2, 3}, "no header length"},
		{"header too long", binary.LittleEndian.AppendUint64(nil, 1<<40), "does not fit"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 10), "{}"...), "does not fit"},
		{"not json", raw("nope", nil), "not a JSON object"},
		{"json array", raw("[]", nil), "not a JSON object"},
		{"truncated json", raw(`{"a":{"dtype":"F32"`, nil), "unexpected EOF"},
		{"trailing", raw(`{} {}`, nil), "trailing"},
		{"bad dtype", raw(`{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, eight), "unsupported dtype"},
		{"no shape", raw(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, eight), "missing shape"},
		{"offsets count", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, eight), "2"},
		{"offset past data", raw(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), "outside"},
		{"reversed offsets", raw(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), "outside"},
		{"negative offset", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, eight), "outside"},
		{"size mismatch", raw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs 12 bytes"},
		{"huge shape", raw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}`, eight), "overflows"},
		{"negative dim", raw(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), "negative"},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "overlaps"},
		{"duplicate", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "duplicate"},
		{"metadata not strings", raw(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"entry not object", raw(`{"a":3}`, nil), "entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.file), int64(len(tc.file)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
	// Every proper prefix of a valid file is invalid.
	b := encode(t, sampleFile())
	for n := 0; n < len(b); n++ {
		if _, err := Read(bytes.NewReader(b[:n]), int64(n)); err == nil {
			t.Errorf("prefix of %d/%d bytes read without error", n, len(b))
		}
	}
}

// Files from other writers may order the header differently and use BF16/F64/I32.
func TestReadForeign(t *testing.T) {
	data := []byte{}
	data = binary.LittleEndian.AppendUint16(data, 0x3f80)                  // BF16 1.0
	data = binary.LittleEndian.AppendUint16(data, 0xc040)                  // BF16 -3.0
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(0.125)) // F64
	data = binary.LittleEndian.AppendUint32(data, uint32(0xfffffffe))      // I32 -2
	h := `{"c":{"dtype":"I32","shape":[1],"data_offsets":[12,16]},"b":{"dtype":"F64","shape":[],"data_offsets":[4,12]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`
	b := raw(h, data)
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s%v%v %s%v %s%v", f.Tensors[0].Name, f.Tensors[0].Shape, f.Tensors[0].Data, f.Tensors[1].Name, f.Tensors[1].Data, f.Tensors[2].Name, f.Tensors[2].Ints)
	if want := "a[2][1 -3] b[0.125] c[-2]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func bigFile(n int) File {
	r := rand.New(rand.NewPCG(1, 2))
	var f File
	for i := 0; i < 20; i++ {
		d := make([]float32, n/20)
		for j := range d {
			d[j] = r.Float32()
		}
		f.Tensors = append(f.Tensors, Tensor{Name: fmt.Sprintf("t%02d", i), DType: "F32", Shape: []int{len(d)}, Data: d})
	}
	return f
}

func BenchmarkRead26MB(b *testing.B) {
	enc := encode(b, bigFile(6_570_000))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(bytes.NewReader(enc), int64(len(enc))); err != nil {
			b.Fatal(err)
		}
	}
}

func findPython(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("python3 not available")
	return ""
}

// An independent reader (Python's json and struct) must decode Write's output to the same values; the reference
// safetensors package is used too when it is installed.
func TestPythonReader(t *testing.T) {
	py := findPython(t)
	path := filepath.Join(t.TempDir(), "x.safetensors")
	in := sampleFile()
	if err := WriteFile(path, in); err != nil {
		t.Fatal(err)
	}
	script := `
import json, struct, sys
b = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", b[:8])
assert (8 + n) % 8 == 0, "data not aligned"
h = json.loads(b[8:8 + n].decode("utf-8"))
data = b[8 + n:]
meta = h.pop("__metadata__", {})
fmt = {"F32": "f", "F16": "e", "I64": "q"}
size = {"F32": 4, "F16": 2, "I64": 8}
out = {"metadata": meta, "tensors": []}
end = 0
for name, e in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"]):
    s, t = e["data_offsets"]
    assert s == end, "gap or overlap before " + name
    end = t
    cnt = 1
    for d in e["shape"]:
        cnt *= d
    assert t - s == cnt * size[e["dtype"]], name
    vals = struct.unpack("<%d%s" % (cnt, fmt[e["dtype"]]), data[s:t])
    out["tensors"].append({"name": name, "dtype": e["dtype"], "shape": e["shape"], "values": [repr(float(v)) if e["dtype"] != "I64" else str(v) for v in vals]})
assert end == len(data), "trailing bytes"
try:
    from safetensors.numpy import load_file
    ref = load_file(sys.argv[1])
    out["reference"] = sorted(ref.keys())
except ImportError:
    pass
print(json.dumps(out))
`
	outb, err := exec.Command(py, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python reader: %v", err)
	}
	var res struct {
		Metadata map[string]string `json:"metadata"`
		Tensors  []struct {
			Name   string   `json:"name"`
			DType  string   `json:"dtype"`
			Shape  []int    `json:"shape"`
			Values []string `json:"values"`
		} `json:"tensors"`
		Reference []string `json:"reference"`
	}
	if err := json.Unmarshal(outb, &res); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	if fmt.Sprint(res.Metadata) != fmt.Sprint(in.Metadata) {
		t.Errorf("python metadata %v, want %v", res.Metadata, in.Metadata)
	}
	if len(res.Tensors) != len(in.Tensors) {
		t.Fatalf("python saw %d tensors", len(res.Tensors))
	}
	for i, w := range in.Tensors {
		g := res.Tensors[i]
		if g.Name != w.Name || g.DType != w.DType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) {
			t.Errorf("python tensor %d: %s %s %v", i, g.Name, g.DType, g.Shape)
			continue
		}
		for j, s := range g.Values {
			var want string
			switch w.DType {
			case "I64":
				want = fmt.Sprint(w.Ints[j])
			case "F16":
				want = pyRepr(halfToFloat32(float32ToHalf(w.Data[j])))
			default:
				want = pyRepr(w.Data[j])
			}
			if s != want {
				t.Errorf("python %s[%d] = %s, want %s", g.Name, j, s, want)
			}
		}
	}
	if res.Reference != nil {
		t.Logf("reference safetensors loaded %v", res.Reference)
	} else {
		t.Log("python safetensors not installed; checked with json/struct only")
	}
}

// pyRepr formats a float32 (widened to float64) as Python's repr(float(x)) does.
func pyRepr(f float32) string {
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	s := fmt.Sprintf("%v", x)
	if !strings.ContainsAny(s, ".en") {
		s += ".0"
	}
	return s
}

func FuzzRead(f *testing.F) {
	f.Add(encode(f, sampleFile()))
	f.Add(raw(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(raw(`{"__metadata__":{"k":"v"}}`, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var total int
		for _, x := range file.Tensors {
			total += 4*len(x.Data) + 8*len(x.Ints)
		}
		if total > 2*len(b) {
			t.Fatalf("%d bytes of tensors from a %d-byte file", total, len(b))
		}
	})
}
