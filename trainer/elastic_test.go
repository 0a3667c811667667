package trainer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// TestElasticLimitsSandwich: with only the kernel elastic (progressive shrinking's first
// phase) every subnet a step trains keeps the largest depth and expand ratio; with every
// dimension elastic some do not.
func TestElasticLimitsSandwich(t *testing.T) {
	const classes, n, r = 5, 4, 24
	for _, tc := range []struct {
		name    string
		elastic *supernet.Dims
		pinned  bool
	}{
		{"kernel only", &supernet.Dims{Kernel: true}, true},
		{"all", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn, err := supernet.Random(tinySpec(classes), 4)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.Elastic = n, r, 3, 0.01, tc.elastic
			cfg.GraphCache = 64
			tr, err := New(sn, cfg)
			if err != nil {
				t.Fatal(err)
			}
			x := noise(n*3*r*r, 3)
			for range 4 {
				if _, err := tr.Step(context.Background(), x, cfg.Resolution, []int{0, 1, 2, 3}, cfg.LR); err != nil {
					t.Fatal(err)
				}
			}
			s := sn.Spec
			pinnedAll := true
			for key := range tr.graphs.byKey {
				var a supernet.Arch
				// A key is the arch's JSON followed by "/n/r": decode the first value only.
				if err := json.NewDecoder(strings.NewReader(key)).Decode(&a); err != nil {
					t.Fatalf("graph key %q: %v", key, err)
				}
				if !s.Pin(a, supernet.Dims{Kernel: true}).Equal(a) {
					pinnedAll = false
				}
			}
			if pinnedAll != tc.pinned {
				t.Errorf("every trained subnet at the largest depth and expand ratio: %v, want %v (%d subnets)", pinnedAll, tc.pinned, len(tr.graphs.byKey))
			}
		})
	}
}

// TestTopReplacesLargest: with Config.Top a step trains that subnet at the top of the
// sandwich and never the largest; without it, the largest. A bad top is refused at New, as
// is a top beside a fixed subnet.
func TestTopReplacesLargest(t *testing.T) {
	const classes, n, r = 5, 4, 24
	s := tinySpec(classes)
	top := s.Smallest()
	for i := range top.KS {
		top.KS[i] = s.Kernels[0]
		top.E[i] = s.Expands[len(s.Expands)-1]
	}
	for i := range top.D {
		top.D[i] = s.Stages[i].Depths[len(s.Stages[i].Depths)-1]
	}
	for _, tc := range []struct {
		name string
		top  *supernet.Arch
	}{
		{"largest", nil},
		{"top", &top},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn, err := supernet.Random(s, 4)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.Top = n, r, 0, 0.01, tc.top
			tr, err := New(sn, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Step(context.Background(), noise(n*3*r*r, 3), r, []int{0, 1, 2, 3}, cfg.LR); err != nil {
				t.Fatal(err)
			}
			want := []supernet.Arch{s.Largest(), s.Smallest()}
			if tc.top != nil {
				want[0] = *tc.top
			}
			var got []supernet.Arch
			for key := range tr.graphs.byKey {
				var a supernet.Arch
				if err := json.NewDecoder(strings.NewReader(key)).Decode(&a); err != nil {
					t.Fatalf("graph key %q: %v", key, err)
				}
				got = append(got, a)
			}
			if len(got) != len(want) {
				t.Fatalf("trained %d subnets, want %d", len(got), len(want))
			}
			for _, w := range want {
				found := false
				for _, g := range got {
					g.R = w.R // a graph runs at the batch's size, not the arch's
					found = found || g.Equal(w)
				}
				if !found {
					t.Errorf("subnet %v not trained", w)
				}
			}
		})
	}
	sn, err := supernet.Random(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	bad := top
	bad.KS = append([]int(nil), top.KS...)
	bad.KS[0] = 4
	for _, tc := range []struct {
		name       string
		top, fixed *supernet.Arch
		want       string
	}{
		{"bad kernel", &bad, nil, "top subnet"},
		{"beside fixed", &top, &top, "exclude each other"},
	} {
		cfg := DefaultConfig()
		cfg.Batch, cfg.Resolution, cfg.Top, cfg.Fixed = n, r, tc.top, tc.fixed
		if _, err := New(sn, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestTeacherGivesSoftTargets: a frozen teacher is asked once per step for the batch, and
// its soft targets change the update compared with distilling from the largest subnet.
func TestTeacherGivesSoftTargets(t *testing.T) {
	const classes, n, r = 5, 4, 24
	x := noise(n*3*r*r, 4)
	labels := []int{0, 1, 2, 3}
	run := func(teacher func(ctx context.Context, x []float32, n, r int) ([]float32, error)) map[string][]float32 {
		sn, err := supernet.Random(tinySpec(classes), 4)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR, cfg.Teacher = n, r, 1, 0.05, teacher
		tr, err := New(sn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Step(context.Background(), x, cfg.Resolution, labels, cfg.LR); err != nil {
			t.Fatal(err)
		}
		return snapshot(sn)
	}
	calls := 0
	confident := func(_ context.Context, in []float32, bn, br int) ([]float32, error) {
		calls++
		if bn != n || br != r || len(in) != n*3*r*r {
			t.Errorf("teacher got batch %d at %d px with %d values", bn, br, len(in))
		}
		z := make([]float32, bn*classes)
		for i := range bn {
			z[i*classes+4] = 20 // always class 4, whatever the label
		}
		return z, nil
	}
	withTeacher, without := run(confident), run(nil)
	if calls != 1 {
		t.Errorf("teacher called %d times in one step", calls)
	}
	if d := maxAbsDiff(withTeacher["classifier.linear.weight"], without["classifier.linear.weight"]); d == 0 {
		t.Error("the teacher's soft targets did not change the update")
	}
	// Every image's soft target puts weight on class 4, so its bias gains more than without.
	if !(withTeacher["classifier.linear.bias"][4] > without["classifier.linear.bias"][4]) {
		t.Errorf("class 4 bias %v with the teacher, %v without", withTeacher["classifier.linear.bias"][4], without["classifier.linear.bias"][4])
	}
}
