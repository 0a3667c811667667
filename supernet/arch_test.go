package supernet

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestMakeDivisible(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{
		{96, 96}, {72, 72}, {64, 64}, {48, 48}, {19.2, 24}, {1152, 1152}, {3, 8}, {12, 16}, {60, 64}, {36, 40}, {20, 24}, {1536, 1536},
	} {
		if got := MakeDivisible(tc.v, 8); got != tc.want {
			t.Errorf("MakeDivisible(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestSpecWidths(t *testing.T) {
	s := OFAMobileNetV3(1.0, 102)
	// SE widths quoted in OFA's train-step fixture README.
	for mid, want := range map[int]int{120: 32, 160: 40, 240: 64, 336: 88, 72: 24} {
		if got := s.SEWidth(mid); got != want {
			t.Errorf("SEWidth(%d) = %d, want %d", mid, got, want)
		}
	}
	if got := s.MidWidth(16, 4); got != 64 {
		t.Errorf("MidWidth(16,4) = %d, want 64", got)
	}
	w12 := OFAMobileNetV3(1.2, 1000)
	if w12.Stem.Out != 24 || w12.Stages[4].Width != 192 || w12.FinalExpand.Out != 1152 || w12.FeatureMix.Out != 1536 {
		t.Errorf("w1.2 widths: stem %d last stage %d final %d mix %d", w12.Stem.Out, w12.Stages[4].Width, w12.FinalExpand.Out, w12.FeatureMix.Out)
	}
}

func TestSpecGolden(t *testing.T) {
	for _, name := range BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			got := s.MarshalSpec()
			back, err := ParseSpec(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.MarshalSpec(), got) {
				t.Fatal("spec JSON does not round-trip")
			}
			var keys strings.Builder
			keys.Write(got)
			keys.WriteString("\n")
			for _, k := range s.Keys() {
				keys.WriteString(k.Name)
				for _, d := range k.Shape {
					keys.WriteString(" ")
					keys.WriteString(strconv.Itoa(d))
				}
				keys.WriteString("\n")
			}
			golden := filepath.Join("testdata", "spec_"+name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(keys.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if keys.String() != string(want) {
				t.Errorf("spec %s differs from %s (run with -update if intended)", name, golden)
			}
		})
	}
}

func TestSpecValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Spec)
		want string
	}{
		{"no classes", func(s *Spec) { s.Classes = 0 }, "classes"},
		{"even kernel", func(s *Spec) { s.Kernels = []int{3, 4} }, "kernels"},
		{"unsorted expands", func(s *Spec) { s.Expands = []int{6, 3} }, "expands"},
		{"bad padding", func(s *Spec) { s.Padding = "valid" }, "padding"},
		{"bad act", func(s *Spec) { s.Stages[1].Act = "gelu" }, "stages[1]"},
		{"no depth", func(s *Spec) { s.Stages[0].Depths = nil }, "stages[0].depths"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := OFAMobileNetV3(1.0, 10)
			tc.mut(s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestArchValidate(t *testing.T) {
	s := OFAMobileNetV3(1.0, 10)
	ok := s.Uniform(5, 4, 3, 160)
	for _, tc := range []struct {
		name string
		mut  func(*Arch)
		want string // "" = valid
	}{
		{"valid", func(a *Arch) {}, ""},
		{"short ks", func(a *Arch) { a.KS = a.KS[:19] }, "ks: 19 values, want 20"},
		{"short e", func(a *Arch) { a.E = a.E[:3] }, "e: 3 values, want 20"},
		{"short d", func(a *Arch) { a.D = a.D[:4] }, "d: 4 values, want 5"},
		{"bad kernel", func(a *Arch) { a.KS[3] = 4 }, "ks[3]: 4 not in [3 5 7]"},
		{"bad expand", func(a *Arch) { a.E[0] = 5 }, "e[0]: 5 not in [3 4 6]"},
		{"bad depth", func(a *Arch) { a.D[2] = 5 }, "d[2]: 5 not in [2 3 4]"},
		{"bad resolution", func(a *Arch) { a.R = 130 }, "r: 130 not in 128..224 step 4"},
		{"missing resolution", func(a *Arch) { a.R = 0 }, "r: 0 not in"},
		{"inactive value still checked", func(a *Arch) { a.KS[3] = 9 }, "ks[3]: 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Arch{KS: append([]int(nil), ok.KS...), E: append([]int(nil), ok.E...), D: append([]int(nil), ok.D...), R: ok.R}
			tc.mut(&a)
			err := s.ValidateArch(a)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseArch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{`{"ks":[3],"e":[3],"d":[2],"r":128}`, ""},
		{`{"ks":[3],"e":[3],"d":[2],"r":128,"w":1.2}`, "unknown field"},
		{`{"ks":[3],"e":[3],"d":[2],"r":128} {}`, "trailing"},
		{`{"ks":"3"}`, "cannot unmarshal"},
		{``, "EOF"},
	} {
		_, err := ParseArch([]byte(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ParseArch(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func randomArch(s *Spec, rng *rand.Rand) Arch {
	nb := s.NumBlocks()
	a := Arch{KS: make([]int, nb), E: make([]int, nb), D: make([]int, len(s.Stages)), R: s.Resolutions[rng.IntN(len(s.Resolutions))]}
	for b := range nb {
		a.KS[b] = s.Kernels[rng.IntN(len(s.Kernels))]
		a.E[b] = s.Expands[rng.IntN(len(s.Expands))]
	}
	for i, st := range s.Stages {
		a.D[i] = st.Depths[rng.IntN(len(st.Depths))]
	}
	return a
}

func TestCanonicalAndEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range BuiltinNames() {
		s, _ := Builtin(name, 10)
		if name == "ofa_mbv3_d234_e346_k357_w1.0" && s.EncodingLen() != 22 {
			t.Fatalf("encoding length %d, NAT's is 22", s.EncodingLen())
		}
		for range 500 {
			a := randomArch(s, rng)
			c, err := s.Canonical(a)
			if err != nil {
				t.Fatal(err)
			}
			// Changing an inactive block must not change the canonical form or hash.
			b := Arch{KS: append([]int(nil), a.KS...), E: append([]int(nil), a.E...), D: a.D, R: a.R}
			for i := range b.KS {
				if !s.Active(b, i) {
					b.KS[i] = s.Kernels[len(s.Kernels)-1]
					b.E[i] = s.Expands[len(s.Expands)-1]
				}
			}
			cb, _ := s.Canonical(b)
			if cb.Hash() != c.Hash() {
				t.Fatalf("%s: inactive blocks changed the hash: %s vs %s", name, a, b)
			}
			cc, _ := s.Canonical(c)
			if !cc.Equal(c) {
				t.Fatal("Canonical is not idempotent")
			}
			x, err := s.Encode(a)
			if err != nil {
				t.Fatal(err)
			}
			back, err := s.Decode(x)
			if err != nil {
				t.Fatalf("Decode(Encode(%s)) = %v", a, err)
			}
			if !back.Equal(c) {
				t.Fatalf("round trip: %s -> %v -> %s, want %s", a, x, back, c)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	s := OFAMobileNetV3(1.0, 10)
	good, _ := s.Encode(s.Largest())
	for _, tc := range []struct {
		name string
		mut  func([]int) []int
		want string
	}{
		{"short", func(x []int) []int { return x[:21] }, "21 integers, want 22"},
		{"gene out of range", func(x []int) []int { x[5] = 10; return x }, "encoding[5]: 10 not in [0,10)"},
		{"hole in stage", func(x []int) []int { x[2+2] = 0; return x }, "after a skipped one"},
		{"too shallow", func(x []int) []int { x[2+2], x[2+3] = 0, 0; x[2+1] = 0; return x }, "1 active blocks"},
		{"width index", func(x []int) []int { x[1] = 1; return x }, "encoding[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Decode(tc.mut(append([]int(nil), good...)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHashStable(t *testing.T) {
	s := OFAMobileNetV3(1.0, 10)
	// The hash is a cache key: it must never change for the same arch.
	const want = "ea60c326632aafac" // first 16 hex digits, pinned
	got := s.Smallest().Hash()[:16]
	if *update {
		t.Logf("smallest hash %s", got)
	}
	if got != want {
		t.Errorf("smallest arch hash %s, pinned %s", got, want)
	}
}

func FuzzParseArch(f *testing.F) {
	s := OFAMobileNetV3(1.0, 10)
	f.Add([]byte(s.Largest().JSON()))
	f.Add([]byte(`{"ks":[3],"e":[3],"d":[2],"r":128}`))
	f.Add([]byte(`{"ks":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseArch(data)
		if err != nil {
			return
		}
		c, err := s.Canonical(a)
		if err != nil {
			return
		}
		x, err := s.Encode(c)
		if err != nil {
			t.Fatalf("valid canonical arch does not encode: %v", err)
		}
		back, err := s.Decode(x)
		if err != nil || !back.Equal(c) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func TestParseArchList(t *testing.T) {
	one := `{"ks":[3],"e":[3],"d":[2],"r":128}`
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{in: "[]", n: 0},
		{in: "[" + one + "]", n: 1},
		{in: "[" + one + "," + one + "]", n: 2},
		{in: one, fail: true},                                             // not an array
		{in: `[{"ks":[3],"x":1}]`, fail: true},                            // unknown field
		{in: "[" + one + "] []", fail: true},                              // trailing data
		{in: `[1]`, fail: true},                                           // not an arch
		{in: "[" + strings.Repeat(one+",", 1024) + one + "]", fail: true}, // too many
	} {
		got, err := ParseArchList([]byte(tc.in))
		if (err != nil) != tc.fail || len(got) != tc.n {
			t.Errorf("ParseArchList(%.40q) = %d archs, %v; want %d (fail %v)", tc.in, len(got), err, tc.n, tc.fail)
		}
	}
	p := filepath.Join(t.TempDir(), "seeds.json")
	if err := os.WriteFile(p, []byte("["+one+"]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadArchListArg("@" + p); err != nil || len(got) != 1 || got[0].R != 128 {
		t.Errorf("ReadArchListArg(@file) = %v, %v", got, err)
	}
	if _, err := ReadArchListArg("@" + p + ".missing"); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzParseArchList(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"ks":[3],"e":[3],"d":[2],"r":128}]`))
	f.Add([]byte(`[{"ks":null},1]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		as, err := ParseArchList(data)
		if err != nil {
			return
		}
		// Every item must parse on its own as ParseArch parses it.
		for i, a := range as {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseArch(b)
			if err != nil || !slices.Equal(again.KS, a.KS) || again.R != a.R {
				t.Fatalf("item %d does not round-trip: %v", i, err)
			}
		}
	})
}
