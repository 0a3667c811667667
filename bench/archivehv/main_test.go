package main

import (
	"math"
	"testing"
)

func TestParseBaseline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []baseline
		ok   bool
	}{
		{"", nil, true},
		{"55139712:74.0", []baseline{{55139712, 74}}, true},
		{"55.1M:74, 0.1G:80.5", []baseline{{55100000, 74}, {100000000, 80.5}}, true},
		{"55M", nil, false},
		{"55M:x", nil, false},
		{"55M:101", nil, false},
		{"-3:50", nil, false},
		{"55M:74,", nil, false},
	} {
		got, err := parseBaseline(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

// TestMargins: each baseline is met by the best front member of no more MAdds, one at
// exactly its cost included; a baseline below the front's cheapest member has none.
func TestMargins(t *testing.T) {
	front := []point{{MAdds: 20, Top1: 0.60}, {MAdds: 50, Top1: 0.72}, {MAdds: 55, Top1: 0.71}, {MAdds: 98, Top1: 0.79}}
	got := margins(front, []baseline{{55, 74}, {97, 70}, {98, 76.4}, {10, 50}})
	want := []struct {
		best   int64 // MAdds of the best member; 0: none
		points float64
	}{{50, -2}, {50, 2}, {98, 2.6}, {0, -50}}
	for i, w := range want {
		m := got[i]
		if (m.Best == nil) != (w.best == 0) || (m.Best != nil && m.Best.MAdds != w.best) || math.Abs(m.Points-w.points) > 1e-9 {
			t.Errorf("baseline %d: %v, want best at %d and margin %g", i, m, w.best, w.points)
		}
	}
}

// TestBetter: without baselines the higher hypervolume wins; with them the larger smallest
// margin, and within 0.05 points of it the larger sum.
func TestBetter(t *testing.T) {
	res := func(hv, lo, sum float64) result { return result{HV: hv, MinMargin: &lo, SumMargin: &sum} }
	for _, tc := range []struct {
		name    string
		a, b    result
		margins bool
		want    bool
	}{
		{"hypervolume", res(0.82, -2, 0), res(0.81, -1, 0), false, true},
		{"smallest margin over hypervolume", res(0.82, -2, 0), res(0.81, -1, 0), true, false},
		{"smallest margin over sum", res(0, -0.98, 0.5), res(0, -1.06, 1.3), true, true},
		{"a tie goes to the sum", res(0, -1.00, 0.5), res(0, -0.96, 0.2), true, true},
		{"a tie, the smaller sum", res(0, -0.96, 0.2), res(0, -1.00, 0.5), true, false},
	} {
		if got := better(tc.a, tc.b, tc.margins); got != tc.want {
			t.Errorf("%s: better = %v, want %v", tc.name, got, tc.want)
		}
	}
}
