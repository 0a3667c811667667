package preprocess

import (
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestSpecValidate(t *testing.T) {
	ok := DefaultSpec(224)
	mod := func(f func(*Spec)) Spec { s := ok; f(&s); return s }
	tests := []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"default", ok, true},
		{"crop 0.875", mod(func(s *Spec) { s.CropFraction = 0.875 }), true},
		{"resolution 1", mod(func(s *Spec) { s.Resolution = 1 }), true},
		{"resolution 0", mod(func(s *Spec) { s.Resolution = 0 }), false},
		{"resolution negative", mod(func(s *Spec) { s.Resolution = -3 }), false},
		{"resolution huge", mod(func(s *Spec) { s.Resolution = MaxResolution + 1 }), false},
		{"crop 0", mod(func(s *Spec) { s.CropFraction = 0 }), false},
		{"crop above 1", mod(func(s *Spec) { s.CropFraction = 1.01 }), false},
		{"crop NaN", mod(func(s *Spec) { s.CropFraction = math.NaN() }), false},
		{"crop tiny", mod(func(s *Spec) { s.CropFraction = 0.001 }), false},
		{"interpolation bicubic", mod(func(s *Spec) { s.Interpolation = "bicubic" }), false},
		{"interpolation empty", mod(func(s *Spec) { s.Interpolation = "" }), false},
		{"std zero", mod(func(s *Spec) { s.Std[1] = 0 }), false},
		{"std negative", mod(func(s *Spec) { s.Std[2] = -1 }), false},
		{"std NaN", mod(func(s *Spec) { s.Std[0] = float32(math.NaN()) }), false},
		{"std Inf", mod(func(s *Spec) { s.Std[0] = float32(math.Inf(1)) }), false},
		{"mean NaN", mod(func(s *Spec) { s.Mean[0] = float32(math.NaN()) }), false},
		{"mean negative ok", mod(func(s *Spec) { s.Mean[0] = -1 }), true},
		{"BGR", mod(func(s *Spec) { s.ChannelOrder = "BGR" }), false},
		{"NHWC", mod(func(s *Spec) { s.Layout = "NHWC" }), false},
		{"replicated chroma", mod(func(s *Spec) { s.JPEGChroma = ChromaReplicated }), true},
		{"unknown chroma", mod(func(s *Spec) { s.JPEGChroma = "nearest" }), false},
		{"zero value", Spec{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("Validate() = nil, want error")
				}
				if !errors.Is(err, ErrSpec) {
					t.Fatalf("error %v does not wrap ErrSpec", err)
				}
			}
		})
	}
}

// The JSON form is stored in ONNX metadata: field names must not drift.
func TestSpecJSONGolden(t *testing.T) {
	s := DefaultSpec(224)
	s.CropFraction = 0.875
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "spec.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("JSON changed:\n got %s\nwant %s", got, want)
	}
	var back Spec
	if err := json.Unmarshal(want, &back); err != nil || back != s {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		r                 int
		f                 float64
		w, h              int
		sw, sh, left, top int
	}{
		{224, 1, 500, 300, 224, 224, 0, 0},
		{224, 0.875, 256, 256, 256, 256, 16, 16},
		{224, 0.875, 400, 300, 341, 256, 58, 16}, // long side floor(256·400/300)=341; (341-224)/2=58.5 → 58 (half even)
		{64, 0.875, 64, 64, 73, 73, 4, 4},        // round(73.14)=73; 4.5 → 4
		{48, 0.875, 64, 40, 88, 55, 20, 4},       // short 40→55, long floor(55·64/40)=88; top 3.5 → 4
		{10, 0.5, 3, 7, 20, 46, 5, 18},           // short 3→20, long floor(20·7/3)=46; top 18
	}
	for _, tc := range tests {
		s := DefaultSpec(tc.r)
		s.CropFraction = tc.f
		sw, sh, l, tp := s.Geometry(tc.w, tc.h)
		if sw != tc.sw || sh != tc.sh || l != tc.left || tp != tc.top {
			t.Errorf("R=%d f=%v %dx%d: got %d %d %d %d, want %d %d %d %d", tc.r, tc.f, tc.w, tc.h, sw, sh, l, tp, tc.sw, tc.sh, tc.left, tc.top)
		}
	}
}
