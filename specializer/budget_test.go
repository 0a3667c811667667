package specializer

import (
	"errors"
	"strings"
	"testing"

	"github.com/natgw/natgw/task"
)

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"300M", 300_000_000, true},
		{"300m", 300_000_000, true},
		{" 0.3G ", 300_000_000, true},
		{"1.5k", 1500, true},
		{"2B", 2_000_000_000, true},
		{"300e6", 300_000_000, true},
		{"300000000", 300_000_000, true},
		{"1", 1, true},
		{"1e15", 1e15, true},
		{"", 0, false},
		{"M", 0, false},
		{"0", 0, false},
		{"-5M", 0, false},
		{"+5M", 0, false},
		{"0.5", 0, false},        // not whole
		{"1.0000001k", 0, false}, // not whole
		{"2e15", 0, false},       // out of range
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"300MB", 0, false},
		{"3 00M", 0, false},
	} {
		got, err := ParseCount(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBudgetSyntax) {
			t.Errorf("ParseCount(%q): error %v does not wrap ErrBudgetSyntax", tc.in, err)
		}
	}
}

func TestParseLatency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"12", 12, true}, {"12.5", 12.5, true}, {"12ms", 12, true}, {" 0.25 ", 0.25, true},
		{"", 0, false}, {"0", 0, false}, {"-1", 0, false}, {"ms", 0, false}, {"NaN", 0, false},
		{"1e7", 0, false}, {"0x1p3", 0, false}, {"12s", 0, false},
	} {
		got, err := ParseLatency(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseLatency(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBudgetSyntax) {
			t.Errorf("ParseLatency(%q): error does not wrap ErrBudgetSyntax", tc.in)
		}
	}
}

func TestBudgetFitsAndKey(t *testing.T) {
	e := task.Entry{MAdds: 100, Params: 50, LatencyMS: 2}
	for _, tc := range []struct {
		b    Budget
		fits bool
	}{
		{Budget{}, true},
		{Budget{MAdds: 100}, true},
		{Budget{MAdds: 99}, false},
		{Budget{Params: 50}, true},
		{Budget{Params: 49}, false},
		{Budget{LatencyMS: 2}, true},
		{Budget{LatencyMS: 1.9}, false},
		{Budget{MAdds: 200, Params: 49}, false},
	} {
		if got := tc.b.Fits(e); got != tc.fits {
			t.Errorf("%s fits %+v: %v, want %v", tc.b.Key(), e, got, tc.fits)
		}
	}
	if (Budget{LatencyMS: 5}).Fits(task.Entry{MAdds: 1}) {
		t.Error("an entry without latency fits a latency bound")
	}
	if a, b := (Budget{MAdds: 1, LatencyMS: 0.5}).Key(), (Budget{MAdds: 1, LatencyMS: 0.5}).Key(); a != b || !strings.Contains(a, "latency_ms=0.5") {
		t.Errorf("keys %q %q", a, b)
	}
	if (Budget{MAdds: 1}).Key() == (Budget{Params: 1}).Key() {
		t.Error("different budgets share a key")
	}
}

func TestBest(t *testing.T) {
	es := []task.Entry{
		{Hash: "a", MAdds: 100, Params: 10, Top1: 0.5},
		{Hash: "b", MAdds: 200, Params: 30, Top1: 0.7},
		{Hash: "c", MAdds: 150, Params: 20, Top1: 0.7},
		{Hash: "d", MAdds: 120, Params: 5, Top1: 0.99, Predicted: true},
	}
	for _, tc := range []struct {
		b    Budget
		want string
	}{
		{Budget{MAdds: 100}, "a"},
		{Budget{MAdds: 160}, "c"},
		{Budget{MAdds: 1000}, "c"}, // tie on accuracy: fewer MAdds
		{Budget{Params: 25}, "c"},
		{Budget{}, "c"},
	} {
		got, err := Best(es, tc.b)
		if err != nil || got.Hash != tc.want {
			t.Errorf("Best(%s) = %q, %v; want %q", tc.b.Key(), got.Hash, err, tc.want)
		}
	}
	var re *RangeError
	if _, err := Best(es, Budget{MAdds: 99}); !errors.As(err, &re) || re.Min.MAdds != 100 || re.Max.MAdds != 200 {
		t.Errorf("below range: %v", err)
	} else if !strings.Contains(err.Error(), "feasible 100..200") {
		t.Errorf("range error text: %v", err)
	}
	if _, err := Best(es[3:], Budget{}); !errors.Is(err, ErrEmptyArchive) {
		t.Errorf("only predicted entries: %v", err)
	}
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"300M", "0.3G", "1.5k", "300e6", "1", "", "-1", "1e400", "NaN", "0x1p4", "9999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseCount(s)
		if err != nil {
			if !errors.Is(err, ErrBudgetSyntax) || v != 0 {
				t.Fatalf("ParseCount(%q) = %d, %v", s, v, err)
			}
			return
		}
		if v < 1 || v > 1e15 {
			t.Fatalf("ParseCount(%q) = %d outside [1, 1e15]", s, v)
		}
	})
}

func FuzzParseLatency(f *testing.F) {
	for _, s := range []string{"12", "12.5ms", "", "0", "1e6", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseLatency(s)
		if err != nil {
			if !errors.Is(err, ErrBudgetSyntax) {
				t.Fatalf("ParseLatency(%q): %v", s, err)
			}
			return
		}
		if !(v > 0 && v <= 1e6) {
			t.Fatalf("ParseLatency(%q) = %v", s, v)
		}
	})
}
