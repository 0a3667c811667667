package supernet_test

import (
	"testing"

	"github.com/natgw/natgw/supernet"
)

func TestParseDims(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want supernet.Dims
		ok   bool
	}{
		{"ks", supernet.Dims{Kernel: true}, true},
		{"ks,d", supernet.Dims{Kernel: true, Depth: true}, true},
		{" e , ks ", supernet.Dims{Kernel: true, Expand: true}, true},
		{"all", supernet.AllDims(), true},
		{"ks,d,e", supernet.AllDims(), true},
		{"", supernet.Dims{}, false},
		{"k", supernet.Dims{}, false},
		{"ks,,d", supernet.Dims{}, false},
	} {
		got, err := supernet.ParseDims(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDims(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			if back, err := supernet.ParseDims(got.String()); err != nil || back != got {
				t.Errorf("ParseDims(%q).String() = %q does not read back: %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

func FuzzParseDims(f *testing.F) {
	for _, s := range []string{"ks", "ks,d", "all", "", ",", "e,e,e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := supernet.ParseDims(s)
		if err != nil {
			return
		}
		if back, err := supernet.ParseDims(d.String()); err != nil || back != d {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, d, d.String(), back, err)
		}
	})
}

// TestPin: progressive shrinking's phases keep the dimensions they do not train at their
// largest choice.
func TestPin(t *testing.T) {
	s := supernet.OFAMobileNetV3(1.0, 10)
	small := s.Smallest()
	if got := s.Pin(small, supernet.AllDims()); !got.Equal(small) {
		t.Errorf("all elastic changed the smallest subnet: %v", got)
	}
	want := s.Largest()
	want.R = small.R // Pin keeps the resolution
	if got := s.Pin(small, supernet.Dims{}); !got.Equal(want) {
		t.Errorf("nothing elastic: %v, want the largest", got)
	}
	k := s.SmallestIn(supernet.Dims{Kernel: true})
	for i, d := range k.D {
		if want := s.Stages[i].Depths[len(s.Stages[i].Depths)-1]; d != want {
			t.Errorf("kernel phase: stage %d depth %d, want %d", i, d, want)
		}
	}
	for b := range k.KS {
		if k.KS[b] != s.Kernels[0] || k.E[b] != s.Expands[len(s.Expands)-1] {
			t.Errorf("kernel phase: block %d ks %d e %d, want %d and %d", b, k.KS[b], k.E[b], s.Kernels[0], s.Expands[len(s.Expands)-1])
		}
	}
	kd := s.SmallestIn(supernet.Dims{Kernel: true, Depth: true})
	for i, d := range kd.D {
		if d != s.Stages[i].Depths[0] {
			t.Errorf("kernel+depth phase: stage %d depth %d, want %d", i, d, s.Stages[i].Depths[0])
		}
	}
	if err := s.ValidateArch(kd); err != nil {
		t.Error(err)
	}
}
