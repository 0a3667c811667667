package trainer

import (
	"context"
	"maps"
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
		return topStep(t, s, x, n, r, sizes, nil)
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

	fixed := s.Largest()
	wantRefused(t, s, n, r, []refusal{
		{"beside fixed", func(c *Config) { c.TopSizes, c.Fixed = []int{32}, &fixed }, "exclude each other"},
		{"too small", func(c *Config) { c.TopSizes = []int{4} }, "top size 4"},
	})
}

// TestTopKD: with Config.TopKD the top at its largest size trains first and teaches every
// other pass. When that size is the batch's, the step is the plain TopSizes one except that
// the top's smaller sizes learn from it too; when it is larger, the top also trains there.
// It is refused without top sizes and beside a frozen teacher.
func TestTopKD(t *testing.T) {
	const classes, n, r = 5, 4, 24
	s := tinySpec(classes)
	x := noise(n*3*r*r, 6)
	run := func(sizes []int, kd bool) (map[string][]float32, StepResult, []string) {
		return topStep(t, s, x, n, r, sizes, func(c *Config) { c.TopKD = kd })
	}
	const w = "classifier.linear.weight"
	for _, tc := range []struct {
		name   string
		sizes  []int
		same   bool // TopKD leaves the update as it was
		taught bool // the top at the batch's size learns from a larger size: its loss gains a distillation term
	}{
		{"only the batch's size", []int{24}, true, false},
		{"a smaller size", []int{16, 24}, false, false},
		{"a larger size", []int{16, 32}, false, true},
	} {
		plain, plainRes, plainKeys := run(tc.sizes, false)
		kd, kdRes, kdKeys := run(tc.sizes, true)
		if kdRes.Subnets != plainRes.Subnets || !slices.Equal(kdKeys, plainKeys) {
			t.Errorf("%s: TopKD trained %d passes, graphs %v; without it %d, %v", tc.name, kdRes.Subnets, kdKeys, plainRes.Subnets, plainKeys)
		}
		if d := maxAbsDiff(kd[w], plain[w]); (d == 0) != tc.same {
			t.Errorf("%s: TopKD changed the update by %g; want a change: %v", tc.name, d, !tc.same)
		}
		if taught := kdRes.LargestLoss > plainRes.LargestLoss+0.1; taught != tc.taught || (!taught && kdRes.LargestLoss != plainRes.LargestLoss) {
			t.Errorf("%s: the top's loss at the batch's size %g with TopKD, %g without; want a distillation term: %v",
				tc.name, kdRes.LargestLoss, plainRes.LargestLoss, tc.taught)
		}
	}

	teacher := func(context.Context, []float32, int, int) ([]float32, error) { return make([]float32, n*classes), nil }
	wantRefused(t, s, n, r, []refusal{
		{"no top sizes", func(c *Config) { c.TopKD = true }, "needs top sizes"},
		{"beside a teacher", func(c *Config) { c.TopSizes, c.TopKD, c.Teacher = []int{32}, true, teacher }, "exclude each other"},
	})
}

// TestTopKDWeight: TopKDWeight weighs the teaching pass alone, whether it runs at a size of
// its own or is the top's pass at the batch's size: 0 is 1, and the step's update is affine
// in the weight (the other passes' targets do not depend on it) and moves with it. It is
// refused without TopKD and when negative.
func TestTopKDWeight(t *testing.T) {
	const classes, n, r = 5, 4, 24
	s := tinySpec(classes)
	x := noise(n*3*r*r, 7)
	const w = "classifier.linear.weight"
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"teaching at a larger size", []int{16, 32}},
		{"teaching at the batch's size", []int{16, 24}},
	} {
		upd := map[float64][]float32{}
		for _, kw := range []float64{0, 1, 2, 3} {
			after, _, _ := topStep(t, s, x, n, r, tc.sizes, func(c *Config) { c.TopKD, c.TopKDWeight = true, kw })
			upd[kw] = after[w]
		}
		if d := maxAbsDiff(upd[0], upd[1]); d != 0 {
			t.Errorf("%s: weight 0 and 1 differ by %g; want 0 to mean 1", tc.name, d)
		}
		d1, d2 := make([]float32, len(upd[1])), make([]float32, len(upd[1]))
		for i := range d1 {
			d1[i], d2[i] = upd[2][i]-upd[1][i], upd[3][i]-upd[2][i]
		}
		step := maxAbsDiff(d1, make([]float32, len(d1)))
		if step < 1e-6 {
			t.Fatalf("%s: weight 2 moved the update by %g against weight 1; want a change", tc.name, step)
		}
		if d := maxAbsDiff(d1, d2); d > 1e-3*step {
			t.Errorf("%s: the update's steps from weight 1 to 2 and 2 to 3 differ by %g (step %g); want it affine in the weight", tc.name, d, step)
		}
	}

	wantRefused(t, s, n, r, []refusal{
		{"without top kd", func(c *Config) { c.TopSizes, c.TopKDWeight = []int{32}, 2 }, "needs top kd"},
		{"negative", func(c *Config) { c.TopSizes, c.TopKD, c.TopKDWeight = []int{32}, true, -1 }, "out of range"},
	})
}

// refusal is a config New must refuse: set adjusts a default one, want is in the error.
type refusal struct {
	name string
	set  func(*Config)
	want string
}

// wantRefused checks that New refuses each config on a random supernet of s, batch n × r px.
func wantRefused(t *testing.T, s *supernet.Spec, n, r int, cases []refusal) {
	t.Helper()
	sn, err := supernet.Random(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.Batch, cfg.Resolution = n, r
		tc.set(&cfg)
		if _, err := New(sn, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// topStep runs one step on batch x [n,3,r,r] of a fresh random supernet of s, the top also
// at sizes, set (if not nil) adjusting the config, and returns its tensors after the update,
// the step's result and the keys of the graphs it built.
func topStep(t *testing.T, s *supernet.Spec, x []float32, n, r int, sizes []int, set func(*Config)) (map[string][]float32, StepResult, []string) {
	t.Helper()
	sn, err := supernet.Random(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.TopSizes = n, r, 0, 0.05, sizes
	if set != nil {
		set(&cfg)
	}
	tr, err := New(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % s.Classes
	}
	res, err := tr.Step(context.Background(), x, r, labels, cfg.LR)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot(sn), res, slices.Sorted(maps.Keys(tr.graphs.byKey))
}
