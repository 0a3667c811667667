package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

type expectedTensor struct {
	Name  string    `json:"name"`
	DType string    `json:"dtype"`
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
	Ints  []int64   `json:"ints"`
}

func loadExpected(t *testing.T) map[string][]expectedTensor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Files map[string][]expectedTensor `json:"files"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return exp.Files
}

var fixtureFiles = []string{"zip_state.pth", "legacy_state.pth", "zip_bare.pth", "legacy_bare.pth"}

func TestLoadFixtures(t *testing.T) {
	exp := loadExpected(t)
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			want, ok := exp[name]
			if !ok {
				t.Fatalf("no expectations for %s", name)
			}
			got, err := LoadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d tensors, want %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.Name != w.Name || g.DType != w.DType || !equalInts(g.Shape, w.Shape) {
					t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
					continue
				}
				if w.Data != nil || strings.HasPrefix(w.DType, "F") || w.DType == "BF16" {
					if g.Ints != nil || len(g.Data) != len(w.Data) {
						t.Errorf("%s: got %d floats (ints %v), want %d", g.Name, len(g.Data), g.Ints, len(w.Data))
						continue
					}
					for j := range w.Data {
						if math.Float32bits(g.Data[j]) != math.Float32bits(float32(w.Data[j])) {
							t.Errorf("%s[%d] = %v, want %v", g.Name, j, g.Data[j], float32(w.Data[j]))
						}
					}
				} else {
					if g.Data != nil || len(g.Ints) != len(w.Ints) {
						t.Errorf("%s: got ints %v (floats %v), want %v", g.Name, g.Ints, g.Data, w.Ints)
						continue
					}
					for j := range w.Ints {
						if g.Ints[j] != w.Ints[j] {
							t.Errorf("%s[%d] = %d, want %d", g.Name, j, g.Ints[j], w.Ints[j])
						}
					}
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
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

// Every proper prefix of a valid file is malformed: it must give an error, never a panic.
func TestTruncated(t *testing.T) {
	for _, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n++ {
			if _, err := Load(bytes.NewReader(b[:n]), int64(n)); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes loaded without error", name, n, len(b))
			}
		}
	}
}

func TestLoadOFA(t *testing.T) {
	path := testutil.Shared(t, ofaCheckpoint)
	keysPath := filepath.Join(filepath.Dir(path), "state_dict_keys.json")
	kb, err := os.ReadFile(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		NKeys          int   `json:"n_keys"`
		NFloatElements int64 `json:"n_float_elements"`
		Keys           []struct {
			Key   string `json:"key"`
			Shape []int  `json:"shape"`
			DType string `json:"dtype"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(kb, &keys); err != nil {
		t.Fatal(err)
	}
	ts, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != keys.NKeys || len(ts) != len(keys.Keys) || len(ts) != 475 {
		t.Fatalf("got %d tensors, want %d", len(ts), keys.NKeys)
	}
	dtypes := map[string]string{"float32": "F32", "int64": "I64"}
	var floats int64
	for i, k := range keys.Keys {
		g := ts[i]
		if g.Name != k.Key || g.DType != dtypes[k.DType] || !equalInts(g.Shape, k.Shape) {
			t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, k.Key, k.DType, k.Shape)
		}
		n := 1
		for _, d := range k.Shape {
			n *= d
		}
		if len(g.Data)+len(g.Ints) != n {
			t.Errorf("%s: %d values for shape %v", g.Name, len(g.Data)+len(g.Ints), k.Shape)
		}
		floats += int64(len(g.Data))
	}
	if floats != keys.NFloatElements {
		t.Errorf("got %d float elements, want %d", floats, keys.NFloatElements)
	}
	t.Run("python", func(t *testing.T) { comparePython(t, path, ts) })
}

// comparePython spot-checks values against PyTorch's own loader when it is installed.
func comparePython(t *testing.T, path string, ts []Tensor) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("python3 with torch not available: %v", err)
	}
	names := []string{"first_conv.conv.weight", "blocks.0.conv.depth_conv.bn.num_batches_tracked", "classifier.linear.weight", "blocks.5.conv.depth_conv.conv.weight"}
	script := `
import json, sys, torch
sd = torch.load(sys.argv[1], map_location="cpu")["state_dict"]
out = {}
for k in sys.argv[2:]:
    if k not in sd:
        continue
    v = sd[k].flatten()
    out[k] = {"head": v[:5].tolist(), "tail": v[-3:].tolist(), "sum": float(v.double().sum())}
print(json.dumps(out))
`
	cmd := exec.Command(py, append([]string{"-c", script, path}, names...)...)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var ref map[string]struct {
		Head []float64 `json:"head"`
		Tail []float64 `json:"tail"`
		Sum  float64   `json:"sum"`
	}
	if err := json.Unmarshal(outb, &ref); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	checked := 0
	for name, r := range ref {
		x := byName[name]
		vals := make([]float64, 0, len(x.Data)+len(x.Ints))
		for _, v := range x.Data {
			vals = append(vals, float64(v))
		}
		for _, v := range x.Ints {
			vals = append(vals, float64(v))
		}
		if len(vals) < len(r.Head) || len(vals) < len(r.Tail) {
			t.Errorf("%s: %d values", name, len(vals))
			continue
		}
		for i, v := range r.Head {
			if vals[i] != v {
				t.Errorf("%s[%d] = %v, python %v", name, i, vals[i], v)
			}
		}
		for i, v := range r.Tail {
			if g := vals[len(vals)-len(r.Tail)+i]; g != v {
				t.Errorf("%s tail[%d] = %v, python %v", name, i, g, v)
			}
		}
		var sum float64
		for _, v := range vals {
			sum += v
		}
		if math.Abs(sum-r.Sum) > 1e-6*math.Max(1, math.Abs(r.Sum)) {
			t.Errorf("%s: sum %v, python %v", name, sum, r.Sum)
		}
		checked++
	}
	if checked < 3 {
		t.Errorf("only %d tensors compared with python", checked)
	}
}

// halfRef computes a binary16 value from its definition.
func halfRef(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m/1024, -14)
	case 0x1f:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got := halfToFloat32(uint16(h))
		want := halfRef(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

// pk builds small pickles by hand for malformed-input tests.
type pk struct{ b []byte }

func (p *pk) op(b ...byte) *pk { p.b = append(p.b, b...); return p }
func (p *pk) str(s string) *pk {
	p.b = append(p.b, 'X')
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
	return p
}
func (p *pk) int(n int32) *pk {
	p.b = append(p.b, 'J')
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(n))
	return p
}
func (p *pk) global(mod, name string) *pk {
	p.b = append(p.b, 'c')
	p.b = append(p.b, mod+"\n"+name+"\n"...)
	return p
}
func (p *pk) ints(ns ...int32) *pk {
	p.op('(')
	for _, n := range ns {
		p.int(n)
	}
	return p.op('t')
}

// tensorPickle is {"w": _rebuild_tensor_v2(storage '0' of numel elements, offset, size, stride, False, OrderedDict())}.
func tensorPickle(storageType string, numel, offset int32, size, stride []int32) []byte {
	p := &pk{}
	p.op(0x80, 2, '}').str("w")
	p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", storageType).str("0").str("cpu").int(numel).op('t', 'Q')
	p.int(offset).ints(size...).ints(stride...).op(0x89)
	p.global("collections", "OrderedDict").op(')', 'R')
	p.op('t', 'R', 's', '.')
	return p.b
}

// legacyFile builds a legacy-format checkpoint {"w": tensor} over storage "0" (FloatStorage, data), optionally
// through a storage view of elements [1, 3), with count as the storage's recorded element count.
func legacyFile(withView bool, count uint64, data []byte) []byte {
	p := &pk{}
	p.op(0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.')
	p.op(0x80, 2).int(1001).op('.')
	p.op(0x80, 2, '}').str("little_endian").op(0x88, 's', '.')
	p.op(0x80, 2, '}').str("w")
	p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(int32(len(data) / 4))
	if withView {
		p.op('(').str("v").int(1).int(2).op('t')
	} else {
		p.op('N')
	}
	p.op('t', 'Q')
	p.int(0).ints(2).ints(1).op(0x89)
	p.global("collections", "OrderedDict").op(')', 'R')
	p.op('t', 'R', 's', '.')
	p.op(0x80, 2, ']', '(').str("0").op('e', '.')
	p.b = binary.LittleEndian.AppendUint64(p.b, count)
	return append(p.b, data...)
}

func makeZip(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	return makeZipWith(t, pkl, storages, zip.Store, zip.Store)
}

// makeZipWith builds a checkpoint-like zip; storage keys "byteorder" and "version" become top-level entries.
func makeZipWith(t testing.TB, pkl []byte, storages map[string][]byte, pklMethod, dataMethod uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, b []byte, method uint16) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	add("archive/data.pkl", pkl, pklMethod)
	for k, v := range storages {
		if k == "byteorder" || k == "version" {
			add("archive/"+k, v, zip.Store)
			continue
		}
		add("archive/data/"+k, v, dataMethod)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func f32bytes(vals ...float32) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestHandMade(t *testing.T) {
	four := f32bytes(1, 2, 3, 4)
	hugeString := (&pk{}).op(0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f).b
	hugeBytes8 := (&pk{}).op(0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x10).b
	hugeFrame := (&pk{}).op(0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 1, 0).b
	manyMarks := append([]byte{0x80, 2}, bytes.Repeat([]byte{'('}, 1<<19)...)
	tests := []struct {
		name    string
		file    []byte
		wantErr string // substring; empty means success
		check   func(t *testing.T, ts []Tensor)
	}{
		{name: "contiguous", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{2, 2}, []int32{2, 1}), map[string][]byte{"0": four}),
			check: func(t *testing.T, ts []Tensor) {
				if len(ts) != 1 || ts[0].Data[3] != 4 || ts[0].Shape[1] != 2 {
					t.Errorf("got %+v", ts)
				}
			}},
		{name: "transposed", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{2, 2}, []int32{1, 2}), map[string][]byte{"0": four}),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; got[0] != 1 || got[1] != 3 || got[2] != 2 || got[3] != 4 {
					t.Errorf("got %v", got)
				}
			}},
		{name: "offset", file: makeZip(t, tensorPickle("FloatStorage", 4, 3, []int32{1}, []int32{1}), map[string][]byte{"0": four}),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; len(got) != 1 || got[0] != 4 {
					t.Errorf("got %v", got)
				}
			}},
		{name: "deflated pickle", file: makeZipWith(t, tensorPickle("FloatStorage", 4, 1, []int32{2}, []int32{2}), map[string][]byte{"0": four, "byteorder": []byte("little"), "version": []byte("3\n")}, zip.Deflate, zip.Store),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; len(got) != 2 || got[0] != 2 || got[1] != 4 {
					t.Errorf("got %v", got)
				}
			}},
		{name: "deflated storage", file: makeZipWith(t, tensorPickle("FloatStorage", 4, 0, []int32{4}, []int32{1}), map[string][]byte{"0": four}, zip.Store, zip.Deflate), wantErr: "compressed"},
		{name: "big endian", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{4}, []int32{1}), map[string][]byte{"0": four, "byteorder": []byte("big")}), wantErr: "byteorder"},
		{name: "half", file: makeZip(t, tensorPickle("HalfStorage", 3, 0, []int32{3}, []int32{1}), map[string][]byte{"0": {0x00, 0x3c, 0x01, 0x00, 0x00, 0xfc}}),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; ts[0].DType != "F16" || got[0] != 1 || got[1] != float32(math.Ldexp(1, -24)) || !math.IsInf(float64(got[2]), -1) {
					t.Errorf("got %s %v", ts[0].DType, got)
				}
			}},
		{name: "legacy", file: legacyFile(false, 4, four),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; len(got) != 2 || got[0] != 1 || got[1] != 2 {
					t.Errorf("got %v", got)
				}
			}},
		{name: "legacy storage view", file: legacyFile(true, 4, four),
			check: func(t *testing.T, ts []Tensor) {
				if got := ts[0].Data; len(got) != 2 || got[0] != 2 || got[1] != 3 {
					t.Errorf("got %v", got)
				}
			}},
		{name: "legacy huge count", file: legacyFile(false, 1<<62, four), wantErr: "bytes left"},
		{name: "legacy short storage", file: legacyFile(false, 1, four), wantErr: "in the file"},
		{name: "dtype object as storage type", file: makeZip(t, tensorPickle("float32", 4, 0, []int32{4}, []int32{1}), map[string][]byte{"0": four}),
			check: func(t *testing.T, ts []Tensor) {
				if ts[0].DType != "F32" || ts[0].Data[2] != 3 {
					t.Errorf("got %+v", ts[0])
				}
			}},
		{name: "view past storage", file: makeZip(t, tensorPickle("FloatStorage", 4, 2, []int32{3}, []int32{1}), map[string][]byte{"0": four}), wantErr: "exceeds storage"},
		{name: "storage past entry", file: makeZip(t, tensorPickle("FloatStorage", 8, 0, []int32{8}, []int32{1}), map[string][]byte{"0": four}), wantErr: "in the file"},
		{name: "expanded view", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{1 << 30}, []int32{0}), map[string][]byte{"0": four}), wantErr: "overlapping"},
		{name: "huge shape", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{1 << 30, 1 << 30, 1 << 30}, []int32{1, 1, 1}), map[string][]byte{"0": four}), wantErr: "overflows"},
		{name: "big view", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{1 << 15, 1 << 15}, []int32{1 << 15, 1}), map[string][]byte{"0": four}), wantErr: "exceeds storage"},
		{name: "negative stride", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{2}, []int32{-1}), map[string][]byte{"0": four}), wantErr: "negative"},
		{name: "missing storage entry", file: makeZip(t, tensorPickle("FloatStorage", 4, 0, []int32{4}, []int32{1}), nil), wantErr: "no data/0"},
		{name: "unknown storage type", file: makeZip(t, tensorPickle("ComplexFloatStorage", 4, 0, []int32{4}, []int32{1}), map[string][]byte{"0": four}), wantErr: "not supported"},
		{name: "huge string length", file: makeZip(t, hugeString, nil), wantErr: "left"},
		{name: "huge bytes8 length", file: makeZip(t, hugeBytes8, nil), wantErr: "left"},
		{name: "huge frame", file: makeZip(t, hugeFrame, nil), wantErr: "left"},
		{name: "too many opcodes", file: makeZip(t, manyMarks, nil), wantErr: "too many opcodes"},
		{name: "not a dict", file: makeZip(t, (&pk{}).op(0x80, 2).int(3).op('.').b, nil), wantErr: "want a dict"},
		{name: "stack underflow", file: makeZip(t, (&pk{}).op(0x80, 2, 's', '.').b, nil), wantErr: "underflow"},
		{name: "no data.pkl", file: makeZip(t, nil, nil)[0:0], wantErr: "not a torch.save file"},
		{name: "empty", file: nil, wantErr: "not a torch.save file"},
		{name: "legacy bad magic", file: (&pk{}).op(0x80, 2).int(5).op('.').b, wantErr: "magic"},
		{name: "random", file: []byte("hello, this is not a checkpoint"), wantErr: "not a torch.save file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := Load(bytes.NewReader(tc.file), int64(len(tc.file)))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, ts)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	for _, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(legacyFile(true, 4, f32bytes(1, 2, 3, 4)))
	f.Add(makeZip(f, tensorPickle("FloatStorage", 4, 0, []int32{2, 2}, []int32{1, 2}), map[string][]byte{"0": f32bytes(1, 2, 3, 4)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := Load(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var total int
		for _, x := range ts {
			total += 4*len(x.Data) + 8*len(x.Ints)
		}
		if total > outputFactor*len(b)+1<<20 {
			t.Fatalf("%d bytes of tensors from a %d-byte file", total, len(b))
		}
	})
}
