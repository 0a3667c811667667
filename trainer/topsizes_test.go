package trainer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// TestTopSizes: with Config.TopSizes a step also trains the top at each listed size other
// than the batch's (once each), which changes the update; it is refused beside a fixed
// subnet and for a size below 8.
func TestTopSizes(t *testing.T) {
	const classes, n, r = 5, 4, 24
	s := tinySpec(classes)
	x := noise(n*3*r*r, 5)
	run := func(sizes []int) (map[string][]float32, StepResult, []string) {
		sn, err := supernet.Random(s, 4)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.TopSizes = n, r, 0, 0.05, sizes
		tr, err := New(sn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Step(context.Background(), x, r, []int{0, 1, 2, 3}, cfg.LR)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for key := range tr.graphs.byKey {
			var a supernet.Arch
			dec := json.NewDecoder(strings.NewReader(key))
			if err := dec.Decode(&a); err != nil {
				t.Fatalf("graph key %q: %v", key, err)
			}
			keys = append(keys, key)
		}
		slices.Sort(keys)
		return snapshot(sn), res, keys
	}
	plain, plainRes, plainKeys := run(nil)
	sized, sizedRes, sizedKeys := run([]int{16, 24, 32, 32})
	if plainRes.Subnets != 2 || sizedRes.Subnets != 4 {
		t.Errorf("subnets trained: %d without sizes, %d with 16,24,32,32 at a 24 px batch; want 2 and 4", plainRes.Subnets, sizedRes.Subnets)
	}
	top := s.Largest()
	top.R = s.Resolutions[0] // a graph key carries the batch's size, not the arch's
	largest, err := s.Canonical(top)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"/4/16", "/4/24", "/4/32"} {
		if !slices.Contains(sizedKeys, string(largest.JSON())+size) {
			t.Errorf("the top was not trained at %s (graphs %v)", size, sizedKeys)
		}
	}
	if len(sizedKeys) != len(plainKeys)+2 {
		t.Errorf("graphs %v with sizes, %v without", sizedKeys, plainKeys)
	}
	if d := maxAbsDiff(sized["classifier.linear.weight"], plain["classifier.linear.weight"]); d == 0 {
		t.Error("training the top at more sizes did not change the update")
	}

	sn, err := supernet.Random(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	fixed := s.Largest()
	for _, tc := range []struct {
		name  string
		sizes []int
		fixed *supernet.Arch
		want  string
	}{
		{"beside fixed", []int{32}, &fixed, "exclude each other"},
		{"too small", []int{4}, nil, "top size 4"},
	} {
		cfg := DefaultConfig()
		cfg.Batch, cfg.Resolution, cfg.TopSizes, cfg.Fixed = n, r, tc.sizes, tc.fixed
		if _, err := New(sn, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestResizeBilinear: half-pixel centres with the edges clamped, as PyTorch's
// interpolate(mode="bilinear", align_corners=False) without antialiasing.
func TestResizeBilinear(t *testing.T) {
	plane := func(r int, f func(y, x int) float32) []float32 {
		p := make([]float32, 3*r*r) // three channels alike
		for c := range 3 {
			for y := range r {
				for x := range r {
					p[c*r*r+y*r+x] = f(y, x)
				}
			}
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		in      []float32
		r, r2   int
		wantRow []float32 // every row of every channel
	}{
		{"up 2 to 4", plane(2, func(_, x int) float32 { return float32(x) }), 2, 4, []float32{0, 0.25, 0.75, 1}},
		{"down 4 to 2", plane(4, func(_, x int) float32 { return float32(x) }), 4, 2, []float32{0.5, 2.5}},
		{"same size", plane(3, func(_, x int) float32 { return float32(x * x) }), 3, 3, []float32{0, 1, 4}},
	} {
		got := resizeBilinear(tc.in, 1, tc.r, tc.r2)
		if len(got) != 3*tc.r2*tc.r2 {
			t.Fatalf("%s: %d values, want %d", tc.name, len(got), 3*tc.r2*tc.r2)
		}
		for row := range 3 * tc.r2 {
			if d := maxAbsDiff(got[row*tc.r2:(row+1)*tc.r2], tc.wantRow); d > 1e-6 {
				t.Errorf("%s: row %d = %v, want %v", tc.name, row, got[row*tc.r2:(row+1)*tc.r2], tc.wantRow)
				break
			}
		}
	}
	// Vertically too: a ramp down the rows of a 2-image batch.
	in := append(plane(2, func(y, _ int) float32 { return float32(y) }), plane(2, func(y, _ int) float32 { return float32(10 * y) })...)
	got := resizeBilinear(in, 2, 2, 4)
	for i, want := range []float32{0, 0.25, 0.75, 1} {
		if g := got[i*4]; g != want {
			t.Errorf("image 0, row %d = %v, want %v", i, g, want)
		}
		if g := got[3*16+i*4]; g != 10*want {
			t.Errorf("image 1, row %d = %v, want %v", i, g, 10*want)
		}
	}
}
